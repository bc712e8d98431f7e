// The Element Plus components of the first screen (shell, sign-in, inbox), registered
// one by one so the bundle carries only these; views loaded on demand import the
// others they use themselves (the whole library is ~3x the initial JavaScript).
import type { App } from 'vue'
import {
  ElAlert, ElButton, ElCard, ElContainer, ElHeader, ElInput, ElLoading, ElMain, ElMenu, ElMenuItem,
  ElOption, ElSelect, ElTable, ElTableColumn, ElTag, ElTreeSelect,
} from 'element-plus'

const components = [
  ElAlert, ElButton, ElCard, ElContainer, ElHeader, ElInput, ElMain, ElMenu, ElMenuItem,
  ElOption, ElSelect, ElTable, ElTableColumn, ElTag, ElTreeSelect,
]

export function useElement(app: App): void {
  for (const c of components) app.use(c)
  app.use(ElLoading)
}
