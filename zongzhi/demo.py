"""The demo: a real city's centers, a few hundred realistic cases, a summary per tier.

Cases are driven through the same ``CenterApp`` commands staff use, with
business times spread over the 30 days before now, so deadlines, holidays
and the working-day calendar apply as they would in production. The summary
is computed from the cases read back from PostgreSQL, not from memory.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

from domain import (
    CATEGORIES,
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    DomainError,
    HandlingClass,
    Instrument,
    Outcome,
    Party,
    Personal,
    Place,
    Severity,
    Status,
    Tier,
)
from flows.router import Router
from flows.scheduler import Scheduler
from projections.cases import CaseIndex
from tenants.center import CenterApp
from tenants.registry import CenterInfo
from tenants.service import Tenants

CST = timezone(timedelta(hours=8), "CST")
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑"
            "梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程")
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志强海燕玉兰"
STREETS = ["人民路", "解放路", "稠州北路", "工人路", "宾王路", "青春路", "江滨路", "丹溪路"]
SUMMARIES = {
    "marriage-family": "夫妻因家庭财产分割发生争执, 请求调解",
    "neighbour-dispute": "楼上住户长期漏水, 与楼下协商未果",
    "land-boundary": "两户宅基地界址不清, 砌墙引发纠纷",
    "labour-pay": "工地班组十余名工人被拖欠工资约八万元",
    "property-management": "小区物业停车收费争议, 业主集体投诉",
    "consumer": "装修公司收取定金后拖延施工",
    "traffic-accident": "电动车与轿车刮擦, 赔偿金额有争议",
    "environment-noise": "夜间工地施工噪声扰民",
    "public-safety-hazard": "老旧小区电动车楼道充电存在火灾隐患",
    "fire-lane-blocked": "商铺货物长期堆放占用消防通道",
    "street-vending": "早市摊贩占道经营影响通行",
}
CHANNELS = [(Channel.GRID_PATROL, 30), (Channel.HOTLINE_12345, 25), (Channel.WINDOW, 20),
            (Channel.CITIZEN_APP, 15), (Channel.PETITION, 7), (Channel.CAMERA, 3)]
TIERS = [(Tier.VILLAGE, 60), (Tier.TOWNSHIP, 25), (Tier.COUNTY, 12), (Tier.CITY, 3)]


def id_number(rng: random.Random, county: str, born: datetime) -> str:
    """A well-formed (GB 11643) resident ID number: region, birth date, serial, check digit."""
    body = f"{county}{born:%Y%m%d}{rng.randrange(1000):03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    return body + check


def intake_time(now: datetime, rng: random.Random) -> datetime:
    """When a simulated matter came in: a day of the last 30, in office hours (08:00 to
    17:59), never after ``now`` (today's hours still to come move to the day before: a
    later step clamped to ``now`` would otherwise run time backwards)."""
    t = now - timedelta(days=30) + timedelta(minutes=rng.randrange(30 * 24 * 60))
    t = t.replace(hour=rng.randrange(8, 18))
    return t if t <= now else t - timedelta(days=1)


@dataclass
class Simulation:
    tenants: Tenants
    city: str
    rng: random.Random
    now: datetime
    created: list[tuple[str, UUID]] = field(default_factory=list)
    centers: dict[Tier, list[CenterInfo]] = field(default_factory=dict)
    intakes: int = 0
    handovers: int = 0
    duplicates: int = 0
    repeats: int = 0
    parties: list[tuple[str, str, Party, datetime]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.router = Router(self.tenants, self.city)
        self.index = CaseIndex(self.tenants, self.city)
        for info in self.tenants.registry.subtree(self.city):
            if not info.retired:
                self.centers.setdefault(info.tier, []).append(info)

    def pick(self, options: list[tuple[Tier, int]] | list[tuple[Channel, int]]) -> object:
        return self.rng.choices([o for o, _ in options], [w for _, w in options])[0]

    def party(self, tenant: str) -> Party:
        name = self.rng.choice(SURNAMES) + "".join(self.rng.sample(GIVEN, self.rng.choice([1, 2])))
        born = datetime(1950, 1, 1) + timedelta(days=self.rng.randrange(365 * 50))
        phone = f"1{self.rng.choice('3456789')}{self.rng.randrange(10**9):09d}"
        address = f"{self.rng.choice(STREETS)}{self.rng.randrange(1, 300)}号"
        return Party(name=Personal(name), phone=Personal(phone),
                     id_number=Personal(id_number(self.rng, (tenant + "02")[:6], born)),
                     address=Personal(address))

    def assignees(self, app: CenterApp, category: str) -> list[Assignee]:
        department = CATEGORIES[category].department
        below = self.tenants.registry.children(app.tenant)
        roll = self.rng.random()
        if below and roll < 0.3:
            lead = Assignee(AssigneeKind.CENTER, self.rng.choice(below).code, lead=True)
        elif len(app.tenant) == 12 and roll < 0.5:
            lead = Assignee(AssigneeKind.GRID_WORKER, f"grid-{app.tenant[-3:]}-1", lead=True)
        else:
            lead = Assignee(AssigneeKind.UNIT, department, lead=True)
        if self.rng.random() < 0.15 and lead.ref != "police":  # joint dispatch
            return [lead, Assignee(AssigneeKind.UNIT, "police")]
        return [lead]

    def run_case(self) -> None:
        tier = self.pick(TIERS)
        assert isinstance(tier, Tier)
        center = self.rng.choice(self.centers.get(tier) or self.centers[Tier.VILLAGE])
        category = self.rng.choice(list(SUMMARIES))
        channel = self.pick(CHANNELS)
        assert isinstance(channel, Channel)
        t = intake_time(self.now, self.rng)
        party = self.party(center.code)
        if self.parties and self.rng.random() < 0.08:  # someone reports the same matter again
            code, category, party, first = self.rng.choice(self.parties[-60:])
            center = self.tenants.registry.get(code)
            tier = center.tier
            t = min(first + timedelta(hours=self.rng.uniform(2, 24 * 20)), self.now)
        app = self.tenants.center(center.code)

        def later(hours: float) -> datetime:
            nonlocal t
            t = t + timedelta(hours=self.rng.uniform(0.2, hours))
            return min(t, self.now)

        self.index.catch_up()
        case = app.receive_case(
            channel=channel, category=category, summary=SUMMARIES[category],
            parties=[party], place=Place(center.code, "辖区内"),
            by=f"clerk-{center.code}", at=t)
        self.intakes += 1
        if case.received_at != t:  # a repeat complaint re-opened a closed case
            self.repeats += 1
            return
        self.parties.append((center.code, category, party, t))
        self.created.append((center.code, case.id))
        if case.suspected_duplicates:
            self.duplicates += 1
            app.merge_case(case.id, case.suspected_duplicates[0], "clerk", later(1))
            return
        fate = self.rng.random()
        if fate < 0.03:
            app.withdraw_case(case.id, "当事人自行和解, 申请撤回", "clerk", later(4))
            return
        severity = self.rng.choices(list(Severity), [3, 12, 55, 30])[0]
        case = app.triage_case(case.id, severity,
                               self.rng.choices(list(HandlingClass), [50, 40, 10])[0],
                               "dispatcher", later(1))
        if case.status is Status.ESCALATED or (fate < 0.10 and tier is not Tier.CITY):
            if case.status is not Status.ESCALATED:  # red below a county escalated itself
                case = app.escalate_case(case.id, center.parent or "", "矛盾升级, 需上级协调",
                                         "director", later(8))
            if self.rng.random() < 0.6:
                upper, top = app, case
                while top.status is Status.ESCALATED:  # a red matter climbs to the county
                    upper, top_id = self.linked(top.links[-1].tenant, top.links[-1].case_id)
                    top = upper.get_case(top_id)
                unit = Assignee(AssigneeKind.UNIT, CATEGORIES[category].department, lead=True)
                upper.dispatch_case(top.id, [unit], "dispatcher", later(4))
                upper.accept_case(top.id, unit.ref, "officer", later(6))
                upper.resolve_case(top.id, Outcome.HANDLED, "上级协调处理完毕", "officer",
                                   later(48))
                self.router.catch_up()
                self.close_loop(app, case.id, later)
            return
        team = self.assignees(app, category)
        case = app.dispatch_case(case.id, team, "dispatcher", later(2))
        if self.rng.random() < 0.1:
            self.answer(app, case, team[0], later, refuse=True)
            team = [Assignee(AssigneeKind.UNIT, CATEGORIES[category].department, lead=True)]
            case = app.dispatch_case(case.id, team, "dispatcher", later(2))
        if fate > 0.93:
            return  # still waiting for the assignee: shows up as open work
        lower = None
        for member in team:
            lower = self.answer(app, case, member, later) or lower
        if self.rng.random() < 0.2:
            app.urge_case(case.id, Instrument.WORK_PROMPT_LETTER, team[0].ref, "超期未反馈进展",
                          "director", later(30))
        where, case_id = lower or (app, case.id)
        where.report_progress(case_id, "已联系双方当事人, 正在核实", team[0].ref, later(20))
        if fate > 0.88:
            self.router.catch_up()
            return  # in progress
        outcome = self.rng.choices(list(Outcome), [55, 35, 6, 4])[0]
        self.resolve(where, case_id, later, outcome)
        if lower is not None:
            self.router.catch_up()  # the village's outcome resolves the township's case
        elif self.rng.random() < 0.06:
            app.give_feedback(case.id, "处理结果已告知当事人", "clerk", later(6))
            app.reject_result(case.id, "对处理结果不满意", "party", later(12))
            app.resolve_case(case.id, Outcome.MEDIATED, "再次调解达成一致", "officer", later(48))
        self.close_loop(app, case.id, later)
        if self.rng.random() < 0.04:
            app.repeat_complaint(case.id, "同一问题再次投诉", "clerk", later(72))

    def linked(self, tenant: str, case_id: UUID) -> tuple[CenterApp, UUID]:
        """The case a hand-over opened in another center, once the router has run."""
        self.router.catch_up()
        self.handovers += 1
        return self.tenants.center(tenant), case_id

    def answer(self, app: CenterApp, case: Case, member: Assignee,
               later: Callable[[float], datetime], refuse: bool = False,
               ) -> tuple[CenterApp, UUID] | None:
        """The assignee accepts (or refuses); a lower center does so in its linked case."""
        if member.kind is not AssigneeKind.CENTER:
            if refuse:
                app.refuse_case(case.id, member.ref, "不属本单位职责", "officer", later(3))
            else:
                app.accept_case(case.id, member.ref, f"officer-{member.ref}", later(6))
            return None
        link = next(k for k in case.links if k.tenant == member.ref)
        lower, lower_id = self.linked(link.tenant, link.case_id)
        if refuse:
            lower.refuse_case(lower_id, member.ref, "不属本辖区", "director", later(3))
        else:
            lower.accept_case(lower_id, member.ref, "director", later(6))
        self.router.catch_up()
        return lower, lower_id

    def resolve(self, app: CenterApp, case_id: UUID, later: Callable[[float], datetime],
                outcome: Outcome) -> None:
        court = f"(2026)浙{app.tenant[2:6]}民初{self.rng.randrange(1, 9999)}号" \
            if outcome is Outcome.REFERRED_TO_COURT else None
        summary = {"no-action-warranted": "经核实不属实, 无需处置"}.get(outcome.value, "已妥善处理")
        app.resolve_case(case_id, outcome, summary, "officer", later(48), court_reference=court)

    def close_loop(self, app: CenterApp, case_id: UUID,
                   later: Callable[[float], datetime]) -> None:
        """Feedback, the party's confirmation and evaluation, closing (and the router
        closes the linked cases with it)."""
        app.give_feedback(case_id, "处理结果已告知当事人", "clerk", later(6))
        app.confirm_case(case_id, "party", later(24))
        app.evaluate_case(case_id, self.rng.choices([5, 4, 3, 2, 1], [60, 25, 8, 4, 3])[0],
                          "", "party", later(2))
        app.close_case(case_id, "clerk", later(2))
        self.router.catch_up()


def summarize(tenants: Tenants, city: str, created: list[tuple[str, UUID]]) -> list[str]:
    """Figures per tier, from the cases as stored."""
    by_tier: dict[Tier, list[Case]] = defaultdict(list)
    for code, case_id in created:
        case = tenants.center(code).get_case(case_id)
        by_tier[Tier(tenants.registry.get(code).tier)].append(case)
    header = (f"{'tier':<9}{'centers':>8}{'cases':>7}{'closed':>8}{'open':>6}{'resolved%':>11}"
              f"{'satisfied%':>12}{'avg h':>8}{'refusals':>10}{'urged':>7}{'escal.':>8}"
              f"{'repeat':>8}{'court':>7}")
    lines = [header, "-" * len(header)]
    totals: Counter[str] = Counter()
    for tier in Tier:
        cases = by_tier.get(tier, [])
        centers = sum(1 for c in tenants.registry.subtree(city) if c.tier == tier)
        countable = [c for c in cases if c.status not in (Status.WITHDRAWN, Status.MERGED)]
        closed = [c for c in countable if c.status is Status.CLOSED]
        rated = [c.stars for c in countable if c.stars is not None]
        handled = [(c.closed_at - c.received_at).total_seconds() / 3600 for c in closed
                   if c.closed_at]
        escalated = sum(1 for c in cases if c.escalated_to)
        court = sum(1 for c in cases if c.court_reference)
        resolved = sum(1 for c in countable if c.outcome is not None)
        figures = Counter(cases=len(cases), closed=len(closed), resolved=resolved,
                          countable=len(countable), refusals=sum(sum(c.refusals.values())
                                                                 for c in cases),
                          urged=sum(len(c.urgings) for c in cases), escalated=escalated,
                          repeat=sum(c.repeat_count for c in cases), court=court)
        totals.update(figures)
        lines.append(
            f"{tier.value:<9}{centers:>8}{len(cases):>7}{len(closed):>8}"
            f"{sum(1 for c in countable if c.is_open):>6}"
            f"{_pct(resolved, len(countable)):>11}"
            f"{_pct(sum(1 for s in rated if s >= 4), len(rated)):>12}"
            f"{(sum(handled) / len(handled) if handled else 0):>8.1f}"
            f"{figures['refusals']:>10}{figures['urged']:>7}{escalated:>8}"
            f"{figures['repeat']:>8}{court:>7}")
    lines.append("-" * len(header))
    lines.append(f"all tiers: {totals['cases']} cases, {totals['closed']} closed, "
                 f"resolution rate {_pct(totals['resolved'], totals['countable'])}%, "
                 f"{totals['escalated']} escalated, {totals['court']} referred to court")
    return lines


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}" if whole else "-"


def run(tenants: Tenants, divisions: Path, city: str, cases: int, seed: int,
        out: Callable[[str], None] = print) -> list[tuple[str, UUID]]:
    started = datetime.now(UTC)
    report = tenants.import_divisions(divisions, city, "demo-importer", started)
    city_name = tenants.registry.get(city).name
    out(f"Centers of {city} {city_name}: {report}")
    simulation = Simulation(tenants, city, random.Random(seed), datetime.now(CST))
    failures = 0
    for _ in range(cases):
        try:
            simulation.run_case()
        except DomainError as e:  # a simulated choice the rules refuse: shown, not hidden
            failures += 1
            out(f"  refused by the rules: {e}")
    issued = Scheduler(tenants, city, simulation.index).tick(simulation.now)
    simulation.router.catch_up()  # the clock's escalations reach the upper tier
    elapsed = (datetime.now(UTC) - started).total_seconds()
    out(f"Drove {simulation.intakes} cases through their loops in {elapsed:.1f} s "
        f"({failures} commands refused by the rules).")
    escalations = sum(1 for i in issued if i.step.instrument is None)
    out(f"Hand-overs between centers: {simulation.handovers}; intake flagged and merged "
        f"{simulation.duplicates} duplicates and re-opened {simulation.repeats} closed cases "
        f"on repeat complaints; the clock issued {len(issued) - escalations} urging "
        f"instruments and {escalations} automatic escalations.")
    out("")
    for line in summarize(tenants, city, simulation.created):
        out(line)
    return simulation.created
