// Live updates: the caseChanged subscription of the center in view. Lists come
// from the projections, which follow the log within moments, so a change
// reloads at once and once more a little later.
import { onUnmounted, ref } from 'vue'
import { onConnection, onReconnect, subscribe } from './api'

export interface CaseChange { position: string; caseId: string; center: string; kind: string; version: number }

export function useLive(scope: () => string | undefined, subtree: boolean, reload: () => void,
  onChange: (c: CaseChange) => void = () => undefined) {
  const live = ref(false)
  let timers: number[] = []
  const center = scope()
  const stop = center ? subscribe<{ caseChanged: CaseChange }>(
    `subscription($s: String, $sub: Boolean!) { caseChanged(scope: $s, subtree: $sub) { position caseId center kind version } }`,
    { s: center, sub: subtree },
    (data) => {
      onChange(data.caseChanged)
      timers.forEach(clearTimeout)
      timers = [250, 1200, 3000].map((ms) => window.setTimeout(reload, ms))
    },
    () => { live.value = false },
  ) : () => undefined
  // "live" once the websocket is up (the subscription travels on it)
  const unwatch = center ? onConnection((up) => { live.value = up }) : () => undefined
  const unhook = onReconnect(reload)
  onUnmounted(() => { stop(); unwatch(); unhook(); timers.forEach(clearTimeout) })
  return { live }
}
