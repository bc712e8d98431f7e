import { createRouter, createWebHistory } from 'vue-router'
import { session } from './session'
import Inbox from './views/InboxView.vue'
import SignIn from './views/SignInView.vue'

// The inbox and sign-in ship in the first bundle; every other view loads on demand.
export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', redirect: () => (session.me?.roles.includes('AUDITOR') ? '/audit' : '/inbox') },
    { path: '/signin', component: SignIn, meta: { public: true } },
    { path: '/inbox', component: Inbox },
    { path: '/intake', component: () => import('./views/IntakeView.vue') },
    { path: '/board', component: () => import('./views/BoardView.vue') },
    { path: '/deadlines', component: () => import('./views/DeadlinesView.vue') },
    { path: '/cases', component: () => import('./views/CasesView.vue') },
    { path: '/cases/:id', component: () => import('./views/CaseView.vue'), props: true },
    { path: '/dashboard', component: () => import('./views/DashboardView.vue') },
    { path: '/alerts', component: () => import('./views/AlertsView.vue') },
    { path: '/audit', component: () => import('./views/AuditView.vue') },
    { path: '/:rest(.*)*', redirect: '/inbox' },
  ],
})

router.beforeEach((to) => {
  if (!to.meta.public && !session.me) return { path: '/signin', query: { next: to.fullPath } }
  return true
})
