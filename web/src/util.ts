import { ElMessage } from 'element-plus'
import { GqlError } from './api'
import { i18n } from './i18n'

/** The translated message for an API error (every extensions.code has one). */
export function errorText(e: unknown): string {
  const t = i18n.global.t
  if (e instanceof GqlError) {
    const key = `errors.${e.code}`
    const text = i18n.global.te(key) ? t(key, { message: e.message, trace: e.trace ?? '' }) : e.message
    return text
  }
  return t('errors.INTERNAL', { trace: '' })
}

export function showError(e: unknown): void {
  ElMessage({ type: 'error', message: errorText(e), duration: 6000, customClass: 'api-error' })
}

export function when(iso: string | null | undefined): string {
  if (!iso) return ''
  const d = new Date(iso)
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`
}

/** The case fields every list shows. */
export const CASE_ROW = `id number centerCode summary category categoryName status severity channel receivedAt due { at kind }`

export interface CaseRow {
  id: string
  number: string
  centerCode: string
  summary: string
  category: string
  categoryName: string
  status: string
  severity: string | null
  channel: string
  receivedAt: string
  due: { at: string; kind: string | null } | null
}
