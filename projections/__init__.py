"""Read models fed by the log groups: the case index (intake, the clock),
the case view (working views, KPIs), and their runner."""
