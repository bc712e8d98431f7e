import { flushPromises, mount } from '@vue/test-utils'
import { describe, expect, it, vi } from 'vitest'
import IntakeForm from '../src/components/IntakeForm.vue'
import { useElement } from '../src/element'
import { i18n } from '../src/i18n'
import { intakeVariables, validateIntake, type IntakeDraft } from '../src/intake'

const good = (): IntakeDraft => ({
  channel: 'WINDOW', category: 'neighbour-dispute', summary: '楼上漏水, 协商未果',
  parties: [{ name: '王小明', phone: '13912345678', idNumber: '', address: '', role: 'APPLICANT' }],
  place: { address: '人民路1号', division: '' },
})

describe('the intake rules', () => {
  it('accept a complete draft', () => {
    expect(validateIntake(good())).toEqual({})
  })

  it('name every missing required field', () => {
    const d = good()
    d.category = ''
    d.summary = ' '
    d.parties[0].name = ''
    d.place.address = ''
    expect(Object.keys(validateIntake(d)).sort()).toEqual(['category', 'parties.0.name', 'place.address', 'summary'])
  })

  it('refuse a malformed phone or ID number but allow leaving them out', () => {
    const d = good()
    d.parties[0].phone = '1391234'
    d.parties[0].idNumber = '33078219900101123'
    expect(validateIntake(d)).toEqual({ 'parties.0.phone': { key: 'intake.phoneBad' }, 'parties.0.idNumber': { key: 'intake.idBad' } })
    d.parties[0].phone = '0579-85551234'
    d.parties[0].idNumber = '33078219900101123x'
    expect(validateIntake(d)).toEqual({})
  })

  it('need at least one party and a summary of five characters', () => {
    const d = good()
    d.parties = []
    d.summary = '漏水'
    expect(validateIntake(d)).toEqual({ parties: { key: 'intake.needParty' }, summary: { key: 'intake.summaryShort' } })
  })

  it('send trimmed values, an upper-case X and no empty optional fields', () => {
    const d = good()
    d.parties[0].idNumber = ' 33078219900101123x '
    d.summary = '  楼上漏水, 协商未果 '
    const v = intakeVariables('330782001', d) as { summary: string; parties: { idNumber: string; address: string | null }[]; place: { division: string | null } }
    expect(v.summary).toBe('楼上漏水, 协商未果')
    expect(v.parties[0].idNumber).toBe('33078219900101123X')
    expect(v.parties[0].address).toBeNull()
    expect(v.place.division).toBeNull()
  })
})

describe('the intake form', () => {
  const mountForm = () => mount(IntakeForm, {
    props: { categories: [{ code: 'neighbour-dispute', name: '邻里纠纷', nameEn: 'Neighbour dispute' }] },
    global: { plugins: [i18n, { install: useElement }] },
  })

  it('shows each problem and sends nothing when the draft breaks a rule', async () => {
    const form = mountForm()
    await form.find('[data-test=intake-summary]').setValue('漏水')
    await form.find('form').trigger('submit')
    await flushPromises()
    expect(form.emitted('submit')).toBeUndefined()
    await vi.waitFor(() => {
      const text = form.findAll('.el-form-item__error').map((e) => e.text()).join(' ')
      expect(text).toContain('事项描述至少5个字')
      expect(text).toContain('事项类别必填')
      expect(text).toContain('详细地址必填')
    })
  })
})
