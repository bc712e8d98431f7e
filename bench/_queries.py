"""The GraphQL documents the API benches send: what the web client's dashboard
overview and inbox ask for (web/src/views/DashboardView.vue, InboxView.vue)."""

KPIS = ("matters resolutionRate { value } satisfaction { value } onTimeRate { value } "
        "overdueNow repeatComplaintRate { value } resolvedAtTownshipOrBelow { value } "
        "responseTime { medianHours }")
FIGURES = "received open closed overdue resolved"
ROW = ("id number centerCode summary category categoryName status severity channel "
       "receivedAt due { at kind }")
QUERIES = {
    "floor": "query($c: String!) { center(code: $c) { code } }",
    "dashboard": f"""query($c: String!) {{ center(code: $c) {{
        ... on ParentCenter {{ dashboard {{ asOf live kpis {{ {KPIS} }}
          rollup {{ total {{ {FIGURES} }} children {{ code figures {{ {FIGURES} }} }} }} }}
        children(first: 100, retired: false) {{ nodes {{ code name }} }} }} }} }}""",
    "overdue": f"query($c: String!) {{ center(code: $c) {{ overdue(subtree: true, first: 20) "
               f"{{ nodes {{ {ROW} }} }} }} }}",
    "inbox": f"query($c: String!) {{ center(code: $c) {{ inbox(first: 20) {{ nodes {{ {ROW} }} "
             f"}} }} }}",
}
#: The dashboard overview in one request: the kept dashboard, the children's names and
#: the 20 cases overdue longest (the web client sends the last as a second request).
OVERVIEW = f"""query($c: String!) {{ center(code: $c) {{
    ... on ParentCenter {{ dashboard {{ asOf live kpis {{ {KPIS} }}
      rollup {{ total {{ {FIGURES} }} children {{ code figures {{ {FIGURES} }} }} }} }}
    children(first: 100, retired: false) {{ nodes {{ code name }} }} }}
    overdue(subtree: true, first: 20) {{ nodes {{ {ROW} }} }} }} }}"""
