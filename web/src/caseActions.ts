// The case commands the detail page offers: each shown only when the user's
// role may take it at the case's center (me.can) and the case's state allows it.
import type { ActionField } from './components/ActionDialog.vue'
import { i18n } from './i18n'
import type { Action, Grants } from './session'

export interface CaseState { status: string; answerableRefs: string[]; stars: number | null; confirmed: boolean }

export interface CaseCommand {
  key: string
  grant: Action
  when: (c: CaseState) => boolean
  mutation: string
  args: string
  fields: () => ActionField[]
  /** Variables from the dialog's values. */
  vars?: (v: Record<string, string | number>) => Record<string, unknown>
}

const t = (k: string) => i18n.global.t(k)
const opts = (prefix: string, values: string[]) => values.map((v) => ({ value: v, label: t(`${prefix}.${v}`) }))
const reason = (): ActionField[] => [{ key: 'reason', kind: 'textarea', label: t('action.reason') }]
const OPEN = ['RECEIVED', 'TRIAGED', 'DISPATCHED', 'ACCEPTED', 'ESCALATED', 'RETURNED']
const is = (...s: string[]) => (c: CaseState) => s.includes(c.status)

export const COMMANDS: CaseCommand[] = [
  { key: 'triage', grant: 'CASE_TRIAGE', when: is('RECEIVED'), mutation: 'triageCase', args: 'severity: $severity, handling: $handling',
    fields: () => [{ key: 'severity', kind: 'select', label: t('col.severity'), options: opts('severity', ['YELLOW', 'BLUE', 'ORANGE', 'RED']) },
      { key: 'handling', kind: 'select', label: t('action.note'), options: opts('handling', ['COMPLEX', 'SIMPLE', 'DIFFICULT']) }] },
  { key: 'progress', grant: 'CASE_PROGRESS', when: is('ACCEPTED'), mutation: 'reportProgress', args: 'note: $note',
    fields: () => [{ key: 'note', kind: 'textarea', label: t('action.note') }] },
  { key: 'resolve', grant: 'CASE_RESOLVE', when: is('ACCEPTED'), mutation: 'resolveCase', args: 'outcome: $outcome, summary: $summary',
    fields: () => [{ key: 'outcome', kind: 'select', label: t('action.outcome'), options: opts('outcome', ['MEDIATED', 'HANDLED', 'NO_ACTION_WARRANTED']) },
      { key: 'summary', kind: 'textarea', label: t('detail.result') }] },
  { key: 'escalate', grant: 'CASE_ESCALATE', when: is('RECEIVED', 'TRIAGED', 'DISPATCHED', 'ACCEPTED', 'RETURNED'), mutation: 'escalateCase', args: 'reason: $reason', fields: reason },
  { key: 'urge', grant: 'CASE_URGE', when: is('DISPATCHED', 'ACCEPTED'), mutation: 'urgeCase', args: 'instrument: $instrument, reason: $reason',
    fields: () => [{ key: 'instrument', kind: 'select', label: t('deadlines.urge'), options: opts('instrument', ['WORK_PROMPT_LETTER', 'RISK_WARNING_LETTER', 'TASK_ASSIGNMENT_SHEET']) }, ...reason()] },
  { key: 'feedback', grant: 'CASE_FEEDBACK', when: is('RESOLVED'), mutation: 'giveFeedback', args: 'message: $message',
    fields: () => [{ key: 'message', kind: 'textarea', label: t('detail.feedback') }] },
  { key: 'confirm', grant: 'CASE_FEEDBACK', when: is('FEEDBACK_GIVEN'), mutation: 'confirmCase', args: '', fields: () => [] },
  { key: 'reject', grant: 'CASE_FEEDBACK', when: is('FEEDBACK_GIVEN'), mutation: 'rejectResult', args: 'reason: $reason', fields: reason },
  { key: 'evaluate', grant: 'CASE_FEEDBACK', when: (c) => c.status === 'CONFIRMED' && c.stars === null, mutation: 'evaluateCase', args: 'stars: $stars, comment: $comment',
    fields: () => [{ key: 'stars', kind: 'stars', label: t('action.stars') }, { key: 'comment', kind: 'text', label: t('action.comment'), required: false }] },
  { key: 'close', grant: 'CASE_FEEDBACK', when: is('CONFIRMED'), mutation: 'closeCase', args: '', fields: () => [] },
  { key: 'reopen', grant: 'CASE_REOPEN', when: is('CLOSED'), mutation: 'reopenCase', args: 'reason: $reason', fields: reason },
  { key: 'withdraw', grant: 'CASE_WITHDRAW', when: (c) => OPEN.includes(c.status), mutation: 'withdrawCase', args: 'reason: $reason', fields: reason },
]

const TYPES: Record<string, string> = {
  severity: 'Severity!', handling: 'HandlingClass!', note: 'String!', outcome: 'Outcome!', summary: 'String!', reason: 'String!',
  instrument: 'Instrument!', message: 'String!', stars: 'Int!', comment: 'String!', ref: 'String',
}

/** The mutation document of a command; it answers the case's id and version. */
export function commandDocument(c: CaseCommand, keys: string[]): string {
  const decl = ['$id: ID!', '$v: Int', ...keys.map((k) => `$${k}: ${TYPES[k]}`)].join(', ')
  const args = ['caseId: $id', 'expectedVersion: $v', c.args].filter(Boolean).join(', ')
  return `mutation(${decl}) { ${c.mutation}(${args}) { id version status } }`
}

export function available(grants: Grants, state: CaseState): CaseCommand[] {
  return COMMANDS.filter((c) => grants[c.grant] && c.when(state))
}
