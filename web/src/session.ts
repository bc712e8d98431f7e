// Who is signed in, the center in view (the scope) and what the user may do there.
import { reactive } from 'vue'
import { GqlError, gql, setToken } from './api'
import { prefetchInbox, tokenCenter } from './prefetch'

export type Tier = 'CITY' | 'COUNTY' | 'TOWNSHIP' | 'VILLAGE'

export interface CenterRef {
  code: string
  name: string
  tier: Tier
}

export interface Me {
  subject: string
  name: string | null
  centerCode: string
  roles: string[]
  unit: string | null
  grid: string | null
  center: CenterRef | null
}

export const ACTIONS = [
  'CENTER_READ', 'CASE_READ', 'CASE_RECEIVE', 'CASE_TRIAGE', 'CASE_DISPATCH', 'CASE_ANSWER',
  'CASE_PROGRESS', 'CASE_URGE', 'CASE_ESCALATE', 'CASE_RESOLVE', 'CASE_FEEDBACK',
  'CASE_REOPEN', 'CASE_MERGE', 'CASE_WITHDRAW', 'CASE_KEEP_SEPARATE', 'PERSONAL_VIEW',
  'KPI_READ', 'AUDIT_READ', 'INSPECTION_RUN',
] as const
export type Action = (typeof ACTIONS)[number]
export type Grants = Partial<Record<Action, boolean>>

const KEY = 'zongzhi.token'

export const session = reactive({
  token: null as string | null,
  me: null as Me | null,
  /** The center in view: the user's own or a descendant picked in the tree. */
  scope: null as CenterRef | null,
  grants: {} as Record<string, Grants>,
  categories: [] as { code: string; name: string; nameEn: string; department: string; departmentName: string }[],
  departments: [] as { code: string; name: string }[],
  /** Why the last session ended (an API error code), shown on the sign-in page. */
  ended: null as string | null,
})

const ME = `query {
  me { subject name centerCode roles unit grid center { code name tier } }
  categories { code name nameEn department departmentName }
  departments { code name }
}`

/** Sign in with a bearer token: the API must accept it (else the GqlError is thrown). */
export async function signIn(token: string): Promise<Me> {
  setToken(token)
  try {
    const data = await gql<{ me: Me; categories: typeof session.categories; departments: typeof session.departments }>(ME)
    session.token = token
    session.me = data.me
    session.categories = data.categories ?? []
    session.departments = data.departments ?? []
    session.scope = data.me.center
    session.grants = {}
    session.ended = null
    sessionStorage.setItem(KEY, token)
    return data.me
  } catch (e) {
    setToken(null)
    throw e
  }
}

export function signOut(): void {
  setToken(null)
  session.token = null
  session.me = null
  session.scope = null
  session.grants = {}
  sessionStorage.removeItem(KEY)
}

export async function restore(): Promise<boolean> {
  const saved = sessionStorage.getItem(KEY)
  if (!saved) return false
  const center = tokenCenter(saved)
  if (center && /^\/(inbox)?$/.test(location.pathname)) {
    setToken(saved)
    prefetchInbox(center)
  }
  try {
    await signIn(saved)
    return true
  } catch (e) {
    signOut()
    session.ended = e instanceof GqlError ? e.code : 'NETWORK'
    return false
  }
}

/** What the user may do at a center (me.can for every action, one request, cached). */
export async function grantsAt(center: string): Promise<Grants> {
  const cached = session.grants[center]
  if (cached) return cached
  const fields = ACTIONS.map((a) => `${a}: can(action: ${a}, center: $c)`).join(' ')
  const data = await gql<{ me: Grants }>(`query($c: String!) { me { ${fields} } }`, { c: center })
  session.grants[center] = data.me
  return data.me
}

export function isWorker(): boolean {
  const roles = session.me?.roles ?? []
  return roles.includes('GRID_WORKER') || roles.includes('UNIT_OFFICER')
}
