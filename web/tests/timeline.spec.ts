import { mount, RouterLinkStub } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import CaseTimeline from '../src/components/CaseTimeline.vue'
import { useElement } from '../src/element'
import { ERROR_CODES, i18n, messages } from '../src/i18n'

const entries = [
  { version: 1, kind: 'Received', at: '2026-03-02T09:00:00+08:00', by: 'clerk-1', summary: '受理: 邻里纠纷' },
  { version: 2, kind: 'Escalated', at: '2026-03-02T10:00:00+08:00', by: 'director-v', summary: '上报 330782001' },
]

function mountTimeline(links: unknown[]) {
  return mount(CaseTimeline, {
    props: { entries, links } as never,
    global: { plugins: [i18n, { install: useElement }], stubs: { RouterLink: RouterLinkStub } },
  })
}

describe('the case timeline', () => {
  it('lists every event in order with who did it', () => {
    const w = mountTimeline([])
    const kinds = w.findAll('.event').map((e) => e.attributes('data-kind'))
    expect(kinds).toEqual(['Received', 'Escalated'])
    expect(w.text()).toContain('director-v')
    expect(w.findAll('.event b').map((b) => b.text())).toEqual(['受理', '上报'])
  })

  it('links the cases up and down the tree, and names none the user may not read', () => {
    const w = mountTimeline([
      { caseId: 'a', center: '330782001', direction: 'DOWN', relation: 'origin', case: { id: 'a', number: '330782001001-20260302-000001', status: 'ESCALATED' } },
      { caseId: 'b', center: '330782', direction: 'UP', relation: 'handover', case: null },
    ])
    const links = w.findAllComponents(RouterLinkStub)
    expect(links.map((l) => l.props('to'))).toEqual(['/cases/a'])
    expect(w.find('[data-relation=handover]').text()).toContain('无权查看')
  })
})

describe('the error messages', () => {
  it('translate every API error code in both languages', () => {
    for (const locale of ['zh-CN', 'en'] as const) {
      for (const code of ERROR_CODES) expect(messages[locale].errors[code], `${locale} ${code}`).toBeTruthy()
    }
  })
})
