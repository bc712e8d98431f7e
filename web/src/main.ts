import { createApp } from 'vue'
import 'element-plus/dist/index.css'
import App from './App.vue'
import { useElement } from './element'
import { i18n } from './i18n'
import { router } from './router'
import { restore, session, signOut } from './session'
import { setAuthFailureHandler } from './api'
import './style.css'

// The tab's session (its token) is restored before the first route is resolved,
// so a deep link or a reload lands where it pointed, signed in.
void restore().finally(() => {
  // a token refused mid-session (expired, retired center) ends it: back to sign-in, saying why
  setAuthFailureHandler((error) => {
    if (!session.me) return // a sign-in attempt: the sign-in page shows its own error
    signOut()
    session.ended = error.code
    void router.push({ path: '/signin', query: { next: router.currentRoute.value.fullPath } })
  })
  const app = createApp(App).use(i18n).use(router)
  useElement(app)
  app.mount('#app')
})
