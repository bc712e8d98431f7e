// The GraphQL client: queries and mutations over HTTP (fetch), subscriptions
// over graphql-transport-ws (graphql-ws). The bearer token goes in the
// Authorization header, or in connection_init for the websocket.
import { createClient, type Client } from 'graphql-ws'

export interface GqlErrorEntry {
  message: string
  path?: (string | number)[]
  extensions?: { code?: string; trace?: string }
}

/** An answer's error, with the API's stable code (docs/api.md "Errors"). */
export class GqlError extends Error {
  constructor(public code: string, message: string, public trace?: string) {
    super(message)
  }
}

let token: string | null = null
let wsClient: Client | null = null
let onAuthFailure: (error: GqlError) => void = () => undefined
const reconnected = new Set<() => void>()
const watchers = new Set<(connected: boolean) => void>()
let connectedNow = false

/** Follow the live connection: told at once, then on every change. */
export function onConnection(listener: (connected: boolean) => void): () => void {
  watchers.add(listener)
  listener(connectedNow)
  return () => watchers.delete(listener)
}

function setConnected(value: boolean) {
  connectedNow = value
  watchers.forEach((w) => w(value))
}

/** Called after the live connection comes back: what changed meanwhile was not
 * sent, so views reload (the lists are the source of truth, not the events). */
export function onReconnect(listener: () => void): () => void {
  reconnected.add(listener)
  return () => reconnected.delete(listener)
}

/** Codes that end the session: the token is missing, expired, invalid or its center retired. */
export const AUTH_CODES = ['UNAUTHENTICATED', 'TOKEN_EXPIRED', 'TOKEN_INVALID', 'TENANT_RETIRED']

export function setAuthFailureHandler(handler: (error: GqlError) => void): void {
  onAuthFailure = handler
}

export function setToken(value: string | null): void {
  token = value
  wsClient?.dispose()
  wsClient = null
  setConnected(false)
}

export function getToken(): string | null {
  return token
}

function firstError(errors: GqlErrorEntry[]): GqlError {
  const e = errors[0]
  return new GqlError(e.extensions?.code ?? 'INTERNAL', e.message, e.extensions?.trace)
}

/** Run a query or mutation; any error in the answer is thrown as a GqlError. */
export async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  let response: Response
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
    })
  } catch {
    throw new GqlError('NETWORK', 'the API cannot be reached')
  }
  let body: { data?: T; errors?: GqlErrorEntry[] }
  try {
    body = await response.json()
  } catch {
    throw new GqlError('NETWORK', `the API answered ${response.status}`)
  }
  if (body.errors?.length) {
    const error = firstError(body.errors)
    if (token && AUTH_CODES.includes(error.code)) onAuthFailure(error)
    throw error
  }
  return body.data as T
}

function client(): Client {
  if (!wsClient) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    const bearer = token
    let connections = 0
    wsClient = createClient({
      url: `${scheme}://${location.host}/graphql`,
      connectionParams: () => (bearer ? { Authorization: `Bearer ${bearer}` } : {}),
      retryAttempts: Infinity,
      // retry a lost connection for ever, but not a refused token (4401/4403: sign in again)
      shouldRetry: (e) => ![4400, 4401, 4403].includes((e as { code?: number } | null)?.code ?? 0),
      lazy: true,
      on: {
        connected: () => {
          setConnected(true)
          if (connections++ > 0) reconnected.forEach((listener) => listener())
        },
        closed: () => setConnected(false),
      },
    })
  }
  return wsClient
}

/** Subscribe; returns the function that ends the subscription. */
export function subscribe<T>(
  query: string,
  variables: Record<string, unknown>,
  onData: (data: T) => void,
  onError: (error: GqlError) => void = () => undefined,
): () => void {
  return client().subscribe<T>(
    { query, variables },
    {
      next: (result) => {
        if (result.errors?.length) onError(firstError(result.errors as GqlErrorEntry[]))
        else if (result.data) onData(result.data as T)
      },
      error: () => onError(new GqlError('NETWORK', 'the live connection was lost')),
      complete: () => undefined,
    },
  )
}

/** A photo on a case, as the API lists it (GraphQL `photos`, or the upload's answer). */
export interface PhotoInfo {
  id: string
  contentType: string
  size: number
  sha256: string
  at: string
  by: string
  url: string
}

async function media(url: string, init: RequestInit = {}): Promise<Response> {
  let response: Response
  try {
    response = await fetch(url, {
      ...init,
      headers: { ...(init.headers ?? {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    })
  } catch {
    throw new GqlError('NETWORK', 'the API cannot be reached')
  }
  if (!response.ok) {
    let error = new GqlError('INTERNAL', `the API answered ${response.status}`)
    try {
      const body = (await response.json()) as { code?: string; message?: string }
      if (body.code) error = new GqlError(body.code, body.message ?? body.code)
    } catch {
      /* not JSON: keep the status */
    }
    if (token && AUTH_CODES.includes(error.code)) onAuthFailure(error)
    throw error
  }
  return response
}

/** Upload one photo (JPEG or PNG, the API checks the bytes) to a case. */
export async function uploadPhoto(caseId: string, file: Blob): Promise<PhotoInfo> {
  const response = await media(`/api/cases/${encodeURIComponent(caseId)}/photos`, {
    method: 'POST',
    headers: { 'Content-Type': file.type || 'application/octet-stream' },
    body: file,
  })
  return (await response.json()) as PhotoInfo
}

/** An image the API serves behind the bearer token, as an object URL for <img>/<image>
 * (revoke it with URL.revokeObjectURL when done). */
export async function imageUrl(url: string): Promise<string> {
  const response = await media(url)
  return URL.createObjectURL(await response.blob())
}
