// The intake form's rules, checked before anything is sent (the API checks
// again: an unknown category or an empty summary is a VALIDATION error there).
export interface PartyDraft { name: string; phone: string; idNumber: string; address: string; role: string }
export interface IntakeDraft {
  channel: string
  category: string
  summary: string
  parties: PartyDraft[]
  place: { address: string; division: string }
}

export type Problems = Record<string, string>

const PHONE = /^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$/
const ID = /^\d{17}[\dXx]$/

/** Problems by field path ('summary', 'parties.0.phone' ...) as i18n keys with params. */
export function validateIntake(d: IntakeDraft): Record<string, { key: string; field?: string }> {
  const out: Record<string, { key: string; field?: string }> = {}
  if (!d.channel) out.channel = { key: 'intake.required', field: 'intake.channel' }
  if (!d.category) out.category = { key: 'intake.required', field: 'intake.category' }
  if (!d.summary.trim()) out.summary = { key: 'intake.required', field: 'intake.summary' }
  else if (d.summary.trim().length < 5) out.summary = { key: 'intake.summaryShort' }
  if (!d.parties.length) out.parties = { key: 'intake.needParty' }
  d.parties.forEach((p, i) => {
    if (!p.name.trim()) out[`parties.${i}.name`] = { key: 'intake.required', field: 'intake.name' }
    if (p.phone.trim() && !PHONE.test(p.phone.trim())) out[`parties.${i}.phone`] = { key: 'intake.phoneBad' }
    if (p.idNumber.trim() && !ID.test(p.idNumber.trim())) out[`parties.${i}.idNumber`] = { key: 'intake.idBad' }
  })
  if (!d.place.address.trim()) out['place.address'] = { key: 'intake.required', field: 'intake.placeAddress' }
  return out
}

/** The receiveCase variables of a valid draft (empty optional fields left out). */
export function intakeVariables(center: string, d: IntakeDraft): Record<string, unknown> {
  const opt = (v: string) => (v.trim() ? v.trim() : null)
  return {
    center, channel: d.channel, category: d.category, summary: d.summary.trim(),
    parties: d.parties.map((p) => ({ name: p.name.trim(), phone: opt(p.phone), idNumber: opt(p.idNumber)?.toUpperCase() ?? null, address: opt(p.address), role: p.role })),
    place: { address: d.place.address.trim(), division: opt(d.place.division) },
  }
}

export const CHANNELS = ['WINDOW', 'HOTLINE_12345', 'GRID_PATROL', 'CITIZEN_APP', 'PETITION', 'CAMERA']
