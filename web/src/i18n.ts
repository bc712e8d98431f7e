// zh-CN first, English switchable. Every API error code has a message here.
import { createI18n } from 'vue-i18n'

export const ERROR_CODES = [
  'UNAUTHENTICATED', 'TOKEN_EXPIRED', 'TOKEN_INVALID', 'TENANT_RETIRED', 'FORBIDDEN',
  'NOT_FOUND', 'VALIDATION', 'ILLEGAL_TRANSITION', 'CONFLICT', 'BAD_REQUEST', 'INTERNAL',
  'NETWORK',
] as const

const zh = {
  app: { title: '综治中心工作台', signOut: '退出', language: 'English', loading: '加载中…', empty: '暂无数据', live: '实时', retry: '重试' },
  nav: { inbox: '待办', intake: '受理登记', board: '派单看板', deadlines: '临期与超期', cases: '全部事项', dashboard: '统计分析', alerts: '视频告警', audit: '督查审计' },
  tier: { CITY: '市级', COUNTY: '县级', TOWNSHIP: '乡镇(街道)', VILLAGE: '村(社区)' },
  header: { center: '中心', tier: '层级', subtree: '视图范围', subtreeAll: '本级及下辖', narrow: '切换到下级中心', own: '回到本级' },
  signin: { title: '登录', pick: '选择演示用户', token: '或粘贴令牌 (Bearer token)', submit: '登录', noDemo: '非演示环境: 请粘贴身份令牌' },
  status: { RECEIVED: '已受理', TRIAGED: '已研判', DISPATCHED: '已派单', ACCEPTED: '处置中', ESCALATED: '已上报', RESOLVED: '已办结', FEEDBACK_GIVEN: '已反馈', CONFIRMED: '已确认', CLOSED: '已归档', MERGED: '已合并', WITHDRAWN: '已撤回', RETURNED: '已退回' },
  channel: { WINDOW: '窗口', HOTLINE_12345: '12345热线', GRID_PATROL: '网格巡查', CITIZEN_APP: '群众APP', PETITION: '信访', CAMERA: '视频发现', HANDOVER: '上下级流转' },
  severity: { RED: '红色', ORANGE: '橙色', YELLOW: '黄色', BLUE: '蓝色' },
  handling: { SIMPLE: '简易', COMPLEX: '一般', DIFFICULT: '疑难' },
  outcome: { MEDIATED: '调解成功', HANDLED: '已处置', REFERRED_TO_COURT: '转诉讼', NO_ACTION_WARRANTED: '无需处置' },
  instrument: { WORK_PROMPT_LETTER: '工作提示函', RISK_WARNING_LETTER: '风险预警函', TASK_ASSIGNMENT_SHEET: '任务交办单' },
  kind: { UNIT: '职能部门', CENTER: '下级中心', GRID_WORKER: '网格员' },
  field: { NAME: '姓名', PHONE: '电话', ID_NUMBER: '身份证号', ADDRESS: '地址' },
  col: { number: '编号', summary: '事项', category: '类别', status: '状态', severity: '等级', received: '受理时间', due: '期限', center: '中心', channel: '渠道', actions: '操作' },
  inbox: { title: '待办事项', open: '查看' },
  intake: {
    title: '受理登记', channel: '来源渠道', category: '事项类别', summary: '事项描述', parties: '当事人', addParty: '添加当事人',
    name: '姓名', phone: '电话', idNumber: '身份证号', address: '住址', role: '身份', place: '发生地点', placeAddress: '详细地址', division: '所在区划',
    photos: '现场照片', submit: '提交登记', received: '已登记: {number}',
    duplicate: '疑似重复: 与 {number} 可能是同一事项', merge: '合并到该事项', keep: '作为独立事项', keepReason: '独立办理的理由', merged: '已合并到 {number}', kept: '已作为独立事项',
    repeat: '该事项为重复投诉, 已重新打开原事项 {number}',
    required: '{field}必填', phoneBad: '电话须为11位手机号或带区号的固话', idBad: '身份证号须为18位 (末位可为X)', summaryShort: '事项描述至少5个字', needParty: '至少登记一名当事人',
  },
  partyRole: { APPLICANT: '申请人', RESPONDENT: '被申请人', OTHER: '其他' },
  detail: {
    title: '事项详情', timeline: '办理过程', parties: '当事人', reveal: '查看明文', revealReason: '查看理由 (将被记录)', revealFields: '查看字段', revealed: '已查看 (已记录)',
    deadlines: '办理期限', respondBy: '响应期限', handleBy: '办结期限', links: '关联事项', up: '上级', down: '下级', assignments: '承办', urgings: '督办', place: '地点',
    noAccess: '无权查看', result: '办理结果', feedback: '反馈', stars: '评价',
  },
  action: {
    triage: '研判', dispatch: '派单', accept: '签收', refuse: '退回', progress: '报告进展', urge: '督办', escalate: '上报', resolve: '办结', feedback: '反馈当事人',
    confirm: '当事人确认', reject: '当事人不满意', evaluate: '评价', close: '归档', reopen: '重新打开', withdraw: '撤回', reason: '理由', note: '说明', outcome: '结果', courtReference: '案号', done: '已完成: {what}',
    lead: '牵头', joint: '联合派单 (可多选协办)', assignee: '承办方', add: '添加', stars: '星级', comment: '评语', ok: '确定', cancel: '取消',
  },
  board: { title: '派单看板', lanes: '承办方泳道', dispatched: '待签收', accepted: '处置中', overdue: '超期', pending: '待派单' },
  deadlines: { dueSoon: '即将到期 (24小时内)', overdue: '已超期', urge: '督办' },
  dash: { title: '统计分析', overview: '概况', analysis: '周期分析', asOf: '截至 {at} 的数据 (每隔数十秒更新)', longestOverdue: '超期最久的 {n} 件', period: '统计周期', kpis: '核心指标', matters: '事项数', resolution: '化解率', satisfaction: '满意率', onTime: '按期办结率', overdueNow: '当前超期', repeat: '重复投诉率', lowTier: '乡村两级化解率', response: '响应时长中位数(小时)', trend: '近8周趋势', ranking: '下级中心排名', hotspots: '热点 (类别 × 区划 × 周)', map: '辖区示意图', received: '受理', closed: '办结', open: '在办', week: '周' },
  alerts: { title: '视频告警', none: '当前没有告警', ack: '签收', confirm: '确认 (转为事项)', dismiss: '误报', frameExpired: '画面已过期 (仅保留1小时)' },
  photos: { title: '照片', add: '添加照片', remove: '移除', none: '暂无照片', hint: 'JPEG 或 PNG, 每张不超过 5 MB, 每件最多 10 张' },
  audit: { title: '督查审计', history: '历史与时点状态', asOf: '时点', accessLog: '个人信息查看记录', viewer: '查看人', reason: '理由', at: '时间', fields: '字段', caseId: '事项ID', load: '查询', violations: '闭环违规', callbacks: '回访', export: '导出 Excel' },
  hist: {
    ofCase: '事项', ofCenter: '本中心 {center}', from: '记录时间起', to: '记录时间止', types: '事件类型', actor: '操作人', none: '没有符合条件的记录',
    version: '序号', position: '日志位置', event: '事件', by: '操作人', at: '业务时间', recorded: '记录时间', why: '理由/说明', stateThen: '当时状态', more: '加载更多',
    pickInstant: '选择日期时间', show: '查看当时状态', notYet: '{at} 时该事项尚未受理', caseThen: '{number} 于 {at} 的状态', centerThen: '中心 {center} 于 {at} 的情况',
    rejections: '不满意次数', cases: '事项数', open: '未办结', noCases: '当时没有事项',
  },
  event: { Received: '受理', Triaged: '研判', Dispatched: '派单', Accepted: '签收', Refused: '退回', ProgressReported: '报告进展', Urged: '督办', Escalated: '上报', Resolved: '办结', FeedbackGiven: '反馈当事人', Confirmed: '当事人确认', ResultRejected: '当事人不满意', Evaluated: '评价', Closed: '归档', Reopened: '重新打开', Merged: '合并', Withdrawn: '撤回', KeptSeparate: '独立办理', SeverityRaised: '升级等级', GroupMatterMarked: '标记群体性', LinkedOutcomeNoted: '关联事项办结回告', LinkedProgressNoted: '关联事项进展', ClosedWithOrigin: '随来源事项归档', ReworkRequested: '来源要求重办', CallbackRecorded: '回访', PhotoAttached: '附加照片' },
  relation: { origin: '来源事项', handover: '流转事项', merged: '合并到', duplicate: '疑似重复' },
  errors: {
    UNAUTHENTICATED: '请先登录', TOKEN_EXPIRED: '登录已过期, 请重新登录', TOKEN_INVALID: '身份令牌无效', TENANT_RETIRED: '您所在的中心已撤销',
    FORBIDDEN: '无权进行此操作 (超出本中心管辖范围或角色权限)', NOT_FOUND: '未找到该事项或中心', VALIDATION: '输入不符合规则: {message}',
    ILLEGAL_TRANSITION: '当前状态不允许此操作: {message}', CONFLICT: '事项已被他人修改, 请刷新后重试', BAD_REQUEST: '请求有误: {message}',
    INTERNAL: '系统内部错误, 已记录 (追踪号 {trace})', NETWORK: '无法连接服务器',
  },
}

const en: typeof zh = {
  app: { title: 'Governance Center Workbench', signOut: 'Sign out', language: '中文', loading: 'Loading…', empty: 'Nothing here', live: 'Live', retry: 'Retry' },
  nav: { inbox: 'Inbox', intake: 'Intake', board: 'Dispatch board', deadlines: 'Due & overdue', cases: 'All cases', dashboard: 'Dashboard', alerts: 'Camera alerts', audit: 'Inspection & audit' },
  tier: { CITY: 'City', COUNTY: 'County', TOWNSHIP: 'Township', VILLAGE: 'Village' },
  header: { center: 'Center', tier: 'Tier', subtree: 'In view', subtreeAll: 'this center and below', narrow: 'Narrow to a lower center', own: 'Back to my center' },
  signin: { title: 'Sign in', pick: 'Pick a demo user', token: 'or paste a bearer token', submit: 'Sign in', noDemo: 'Not a demo: paste your token' },
  status: { RECEIVED: 'Received', TRIAGED: 'Triaged', DISPATCHED: 'Dispatched', ACCEPTED: 'In hand', ESCALATED: 'Escalated', RESOLVED: 'Resolved', FEEDBACK_GIVEN: 'Fed back', CONFIRMED: 'Confirmed', CLOSED: 'Closed', MERGED: 'Merged', WITHDRAWN: 'Withdrawn', RETURNED: 'Returned' },
  channel: { WINDOW: 'Window', HOTLINE_12345: '12345 hotline', GRID_PATROL: 'Grid patrol', CITIZEN_APP: 'Citizen app', PETITION: 'Petition', CAMERA: 'Camera', HANDOVER: 'Hand-over' },
  severity: { RED: 'Red', ORANGE: 'Orange', YELLOW: 'Yellow', BLUE: 'Blue' },
  handling: { SIMPLE: 'Simple', COMPLEX: 'Complex', DIFFICULT: 'Difficult' },
  outcome: { MEDIATED: 'Mediated', HANDLED: 'Handled', REFERRED_TO_COURT: 'Referred to court', NO_ACTION_WARRANTED: 'No action warranted' },
  instrument: { WORK_PROMPT_LETTER: 'Work prompt letter', RISK_WARNING_LETTER: 'Risk warning letter', TASK_ASSIGNMENT_SHEET: 'Task assignment sheet' },
  kind: { UNIT: 'Unit', CENTER: 'Lower center', GRID_WORKER: 'Grid worker' },
  field: { NAME: 'Name', PHONE: 'Phone', ID_NUMBER: 'ID number', ADDRESS: 'Address' },
  col: { number: 'Number', summary: 'Matter', category: 'Category', status: 'Status', severity: 'Severity', received: 'Received', due: 'Due', center: 'Center', channel: 'Channel', actions: 'Actions' },
  inbox: { title: 'Inbox', open: 'Open' },
  intake: {
    title: 'Intake', channel: 'Channel', category: 'Category', summary: 'Summary', parties: 'Parties', addParty: 'Add a party',
    name: 'Name', phone: 'Phone', idNumber: 'ID number', address: 'Address', role: 'Role', place: 'Place', placeAddress: 'Address', division: 'Division',
    photos: 'Photos', submit: 'Register', received: 'Registered: {number}',
    duplicate: 'Suspected duplicate of {number}', merge: 'Merge into it', keep: 'Keep separate', keepReason: 'Why it is a matter of its own', merged: 'Merged into {number}', kept: 'Kept as a separate matter',
    repeat: 'A repeat complaint: case {number} was re-opened',
    required: '{field} is required', phoneBad: 'A phone is 11 mobile digits or an area-code landline', idBad: 'An ID number has 18 characters (the last may be X)', summaryShort: 'The summary needs at least 5 characters', needParty: 'Register at least one party',
  },
  partyRole: { APPLICANT: 'Applicant', RESPONDENT: 'Respondent', OTHER: 'Other' },
  detail: {
    title: 'Case', timeline: 'Timeline', parties: 'Parties', reveal: 'Reveal', revealReason: 'Reason (recorded)', revealFields: 'Fields', revealed: 'Revealed (recorded)',
    deadlines: 'Deadlines', respondBy: 'Respond by', handleBy: 'Handle by', links: 'Linked cases', up: 'upper', down: 'lower', assignments: 'Assignees', urgings: 'Urgings', place: 'Place',
    noAccess: 'Not yours to see', result: 'Result', feedback: 'Feedback', stars: 'Rating',
  },
  action: {
    triage: 'Triage', dispatch: 'Dispatch', accept: 'Accept', refuse: 'Refuse', progress: 'Report progress', urge: 'Urge', escalate: 'Escalate', resolve: 'Resolve', feedback: 'Feed back', confirm: 'Party confirms', reject: 'Party rejects', evaluate: 'Rate', close: 'Close', reopen: 'Re-open', withdraw: 'Withdraw', reason: 'Reason', note: 'Note', outcome: 'Outcome', courtReference: 'Court reference', done: 'Done: {what}',
    lead: 'Lead', joint: 'Joint dispatch (co-assignees)', assignee: 'Assignee', add: 'Add', stars: 'Stars', comment: 'Comment', ok: 'OK', cancel: 'Cancel',
  },
  board: { title: 'Dispatch board', lanes: 'Lanes', dispatched: 'Dispatched', accepted: 'In hand', overdue: 'Overdue', pending: 'To dispatch' },
  deadlines: { dueSoon: 'Due within 24 h', overdue: 'Overdue', urge: 'Urge' },
  dash: { title: 'Dashboard', overview: 'Overview', analysis: 'Period analysis', asOf: 'As of {at} (updated every few tens of seconds)', longestOverdue: 'The {n} cases overdue longest', period: 'Period', kpis: 'KPIs', matters: 'Matters', resolution: 'Resolution rate', satisfaction: 'Satisfaction', onTime: 'On-time rate', overdueNow: 'Overdue now', repeat: 'Repeat complaints', lowTier: 'Resolved at township or below', response: 'Median response (h)', trend: 'Last 8 weeks', ranking: 'Child centers', hotspots: 'Hot spots (category × division × week)', map: 'Schematic of the subtree', received: 'Received', closed: 'Closed', open: 'Open', week: 'Week' },
  alerts: { title: 'Camera alerts', none: 'No alerts', ack: 'Acknowledge', confirm: 'Confirm into a case', dismiss: 'Dismiss as false', frameExpired: 'Frame expired (kept for an hour)' },
  photos: { title: 'Photos', add: 'Add photos', remove: 'Remove', none: 'No photos', hint: 'JPEG or PNG, up to 5 MB each, at most 10 per case' },
  audit: { title: 'Inspection & audit', history: 'History and state as of a date', asOf: 'As of', accessLog: 'Views of personal data', viewer: 'Viewer', reason: 'Reason', at: 'At', fields: 'Fields', caseId: 'Case id', load: 'Load', violations: 'Closed-loop violations', callbacks: 'Callbacks', export: 'Export xlsx' },
  hist: {
    ofCase: 'A case', ofCenter: 'This center {center}', from: 'Recorded from', to: 'Recorded to', types: 'Event types', actor: 'Actor', none: 'No matching events',
    version: 'No.', position: 'Log position', event: 'Event', by: 'By', at: 'Business time', recorded: 'Recorded', why: 'Why', stateThen: 'State then', more: 'Load more',
    pickInstant: 'Pick a date and time', show: 'Show the state then', notYet: 'The case was not received yet at {at}', caseThen: '{number} as of {at}', centerThen: 'Center {center} as of {at}',
    rejections: 'Rejections', cases: 'Cases', open: 'Open', noCases: 'No cases then',
  },
  event: { Received: 'Received', Triaged: 'Triaged', Dispatched: 'Dispatched', Accepted: 'Accepted', Refused: 'Refused', ProgressReported: 'Progress reported', Urged: 'Urged', Escalated: 'Escalated', Resolved: 'Resolved', FeedbackGiven: 'Fed back', Confirmed: 'Confirmed by the party', ResultRejected: 'Rejected by the party', Evaluated: 'Rated', Closed: 'Closed', Reopened: 'Re-opened', Merged: 'Merged', Withdrawn: 'Withdrawn', KeptSeparate: 'Kept separate', SeverityRaised: 'Severity raised', GroupMatterMarked: 'Marked a group matter', LinkedOutcomeNoted: 'Linked case resolved', LinkedProgressNoted: 'Linked case progress', ClosedWithOrigin: 'Closed with its origin', ReworkRequested: 'Sent back for rework', CallbackRecorded: 'Callback', PhotoAttached: 'Photo attached' },
  relation: { origin: 'origin', handover: 'handed over', merged: 'merged into', duplicate: 'suspected duplicate' },
  errors: {
    UNAUTHENTICATED: 'Please sign in', TOKEN_EXPIRED: 'Your sign-in expired; sign in again', TOKEN_INVALID: 'The token is not valid', TENANT_RETIRED: 'Your center was retired',
    FORBIDDEN: 'Not allowed (outside your center\'s reach or your role)', NOT_FOUND: 'No such case or center', VALIDATION: 'The input breaks a rule: {message}',
    ILLEGAL_TRANSITION: 'Not allowed in the case\'s state: {message}', CONFLICT: 'Someone changed the case meanwhile: reload and retry', BAD_REQUEST: 'Bad request: {message}',
    INTERNAL: 'Internal error; it was logged (trace {trace})', NETWORK: 'The server cannot be reached',
  },
}

export const LOCALE_KEY = 'zongzhi.locale'

export const i18n = createI18n({
  legacy: false,
  locale: (typeof localStorage !== 'undefined' && localStorage.getItem(LOCALE_KEY)) || 'zh-CN',
  fallbackLocale: 'zh-CN',
  messages: { 'zh-CN': zh, en },
})

export const messages = { 'zh-CN': zh, en }
