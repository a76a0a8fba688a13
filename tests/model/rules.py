"""Independent reference model of doudi's monthly payment rules.

Written from the delivery contract and the brief only. One person, one month, one program at a
time, in decimal arithmetic. Read top to bottom: reference look-ups, what is due for a unit in a
service month, then the month-by-month history (deaths, regular lines, arrears, price subsidy).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

FEN, YUAN = Decimal("0.01"), Decimal("1")
FUNDS = ("central", "provincial", "city", "county")
HEAD = "户主"


# ----------------------------------------------------------------------------- the interface
@dataclass(frozen=True)
class Reference:
    standards: list[dict]
    cpi: list[dict]
    price_linkage: list[dict]
    fund_shares: list[dict]
    exclusions: list[dict]
    province: str = "21"


@dataclass(frozen=True)
class MonthInput:
    payroll_month: str
    rosters: dict[str, list[dict]]
    deaths: list[dict] = field(default_factory=list)
    withdrawn_deaths: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Line:
    payroll_month: str
    service_month: str
    program: str
    line_type: str
    id_number: str
    amount: Decimal
    status: str
    fund: tuple


@dataclass(frozen=True)
class Receivable:
    payroll_month: str
    service_month: str
    program: str
    line_type: str
    id_number: str
    amount: Decimal


class ReferenceGap(Exception):
    """The reference tables cannot pay this month (the whole month is refused)."""


@dataclass
class MonthResult:
    lines: list[Line]
    receivables: list[Receivable]


# ----------------------------------------------------------------------------- small helpers
def fen(x: Decimal) -> Decimal:
    return x.quantize(FEN, ROUND_HALF_UP)


def add_months(month: str, k: int) -> str:
    n = int(month[:4]) * 12 + int(month[5:7]) - 1 + k
    return f"{n // 12:04d}-{n % 12 + 1:02d}"


def entitled(row: dict, s: str) -> bool:
    """enrolled_from <= S <= enrolled_to (a blank bound is open)."""
    # OPEN: a blank enrolled_from is treated as "entitled since always" (validation should prevent it).
    return (row.get("enrolled_from") or "0000-00") <= s and (not row.get("enrolled_to") or s <= row["enrolled_to"])


def alive(pid: str, s: str, dead: dict) -> bool:
    """Paid for service month S unless a known death fell in an earlier month (death month is paid)."""
    return pid not in dead or s <= dead[pid]


def orphan_last_month(pid: str) -> str:
    """Month of the 18th birthday, from the birth date inside the ID number (positions 7-14)."""
    return f"{int(pid[6:10]) + 18:04d}-{pid[10:12]}"


# ----------------------------------------------------------------------------- reference look-ups
def standard(ref, program, component, region, ur, category, p, s, required=True):
    """Monthly amount of a standard for payroll P and service month S (contract section 3)."""
    def first_payroll(r):
        return r["first_payroll"] or r["effective_from"]

    rows = [r for r in ref.standards
            if r["program"] == program and r["component"] == component
            and region.startswith(r["region_code"])
            and r["urban_rural"] in (ur, "*") and r["category"] in (category, "*")
            and first_payroll(r) <= p and r["effective_from"] <= s
            and (not r["effective_to"] or s <= r["effective_to"])]
    if not rows:
        if required:
            raise ReferenceGap(f"no standard {program}/{component} for region {region}, {ur}, "
                               f"category {category}, service month {s}, payroll {p}")
        return None
    # longest region prefix, then a specific urban_rural over '*', then a specific category over '*'
    # OPEN: when both could be specific, urban_rural specificity ranks before category specificity.
    def rank(r):
        return len(r["region_code"]), r["urban_rural"] != "*", r["category"] != "*"
    best = max(rank(r) for r in rows)
    rows = [r for r in rows if rank(r) == best]
    latest = max(r["effective_from"] for r in rows)
    chosen = rows[[r["effective_from"] for r in rows].index(latest)]
    # OPEN: a duplicate version (same key, same effective_from) is an error even when the twin has a
    # later first_payroll; it is raised when the key is needed, not for keys never used.
    key = ("program", "component", "region_code", "urban_rural", "category", "effective_from")
    twins = [r for r in ref.standards if all(r[k] == chosen[k] for k in key)]
    if len(twins) > 1:
        raise ReferenceGap(f"two versions of standard {program}/{component} {chosen['region_code']} "
                           f"{chosen['urban_rural']} {chosen['category']} from {latest}")
    return Decimal(chosen["amount"])


def fund_shares(ref, program, region, s):
    """(central, provincial, city, county) fractions: longest prefix, then latest effective_from <= S."""
    rows = [r for r in ref.fund_shares if r["program"] == program
            and region.startswith(r["region_code"]) and r["effective_from"] <= s]
    if not rows:
        return None
    longest = max(len(r["region_code"]) for r in rows)
    rows = [r for r in rows if len(r["region_code"]) == longest]
    latest = max(r["effective_from"] for r in rows)
    rows = [r for r in rows if r["effective_from"] == latest]
    shares = tuple(Decimal(rows[0][f]) for f in FUNDS)
    if len(rows) > 1 or sum(shares) != 1:
        raise ReferenceGap(f"ambiguous or not summing to 1: fund shares {program} {rows[0]['region_code']} {latest}")
    return shares


def check_province_funded(ref, p, counties):
    """D9: fund_shares.csv must fund each of the four programs in every county of the province for
    payroll P, whether anyone is on that program or not; otherwise the month is refused."""
    prov = ref.province
    for program in ("dibao", "tekun", "orphan", "disability"):
        rows = [r for r in ref.fund_shares if r["program"] == program and r["effective_from"] <= p
                and (prov.startswith(r["region_code"]) or r["region_code"].startswith(prov))]
        if not rows:
            raise ReferenceGap(f"no fund share at all for {program} in province {prov}, payroll {p}")
        # D9: the model knows no list of counties; it checks every county delivered this month.
        for county in sorted(counties):
            if fund_shares(ref, program, county, p) is None:
                raise ReferenceGap(f"no fund share for {program} region {county}, payroll {p}")


# the canonical values of contract section 2 that a standard is looked up by
CARE_LEVELS = ("全自理", "半护理", "全护理")
ORPHAN_PLACEMENTS = ("机构养育", "社会散居", "事实无人抚养")
CLASS_CATEGORIES = ("老年", "重残", "重病", "未成年")


def check_province_standards(ref, p, counties):
    """D17, as D9: standards.csv must give, for payroll P, each standard a program's rule looks up
    (tekun basic and care by level, the orphans' allowance by placement, the living subsidy, the
    dibao standard and class add-on by category), urban and rural, in every county delivered this
    month, whether anyone there needs it or not. (The nursing subsidy is by grade: a grade the
    table does not list is not eligible, brief D3.)"""
    needs = ([("tekun", "basic", None), ("disability", "living", None), ("dibao", "standard", None)]
             + [("tekun", "care", c) for c in CARE_LEVELS] + [("orphan", "basic", c) for c in ORPHAN_PLACEMENTS]
             + [("dibao", "class_addon", c) for c in CLASS_CATEGORIES])
    for county in sorted(counties):
        for ur in ("城市", "农村"):
            for program, component, category in needs:
                standard(ref, program, component, county, ur, category, p, p)


def split_funds(amount: Decimal, shares) -> tuple:
    """Each part = floor(fen x share); the fen left over go to the largest remainders (ties: in order)."""
    total = int(amount * 100)
    exact = [Decimal(total) * sh for sh in shares]
    parts = [int(x.to_integral_value(ROUND_FLOOR)) for x in exact]
    order = sorted(range(4), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return tuple((Decimal(n) / 100).quantize(FEN) for n in parts)


def fund_program(program: str) -> str:
    return "disability" if program.startswith("disability") else program


def line_fund(ref, program, line_type, region, s):
    shares = None
    if line_type == "price_subsidy":
        shares = fund_shares(ref, "price_subsidy", region, s)  # a price_subsidy row wins where it matches
    shares = shares or fund_shares(ref, fund_program(program), region, s)
    if shares is None:
        raise ReferenceGap(f"no fund share for {fund_program(program)} region {region} service month {s}")
    return shares


def price_rule(ref, p):
    """The price-linkage version in force in payroll month P (latest effective_from wins)."""
    rows = [r for r in ref.price_linkage if r["effective_from"] <= p and (not r["effective_to"] or p <= r["effective_to"])]
    if not rows:
        # OPEN: no version covering the month is a reference gap (the brief counts a missing rule
        # version as one), not "no subsidy"; raised only when someone would be covered.
        raise ReferenceGap(f"no price_linkage version for payroll {p}")
    latest = max(r["effective_from"] for r in rows)
    rows = [r for r in rows if r["effective_from"] == latest]
    if len(rows) > 1:
        raise ReferenceGap(f"two price_linkage versions from {latest}")
    return rows[0]


def cpi_row(ref, month):
    """Provincial series where it has the month, else the national series '00'."""
    for area in (ref.province, "00"):
        rows = [r for r in ref.cpi if r["month"] == month and r["area"] == area]
        if len(rows) > 1:
            raise ReferenceGap(f"two cpi rows for {month} area {area}")
        if rows:
            return rows[0]
    raise ReferenceGap(f"no cpi row for index month {month}")


def subsidy_rate(rule, cpi):
    """The rate (percent) if the mechanism triggers this month, else None. A blank threshold never triggers."""
    def num(v):
        return Decimal(v) if (v or "").strip() else None
    cpi_v, food_v = num(cpi["cpi_yoy"]), num(cpi["food_yoy"])
    cpi_t, food_t = num(rule["cpi_threshold"]), num(rule["food_threshold"])
    triggering = {}
    if cpi_t is not None and cpi_v is not None and cpi_v >= cpi_t:
        triggering["cpi"] = cpi_v
    if food_t is not None and food_v is not None and food_v >= food_t:
        triggering["food"] = food_v
    if not triggering:
        return None
    basis = rule["basis"]
    if basis == "triggered":
        rate = max(triggering.values())
    else:
        # basis cpi/food uses that index even when only the other one triggered (D4 then applies).
        rate = cpi_v if basis == "cpi" else food_v
    # D4: a price subsidy is never paid on a falling index: a rate of zero or below pays nothing,
    # whatever the minimum.
    if rate is None or rate <= 0:
        return None
    return rate


# ----------------------------------------------------------------------------- one roster month
class RosterMonth:
    """A month's accepted rosters, indexed by payment unit and by who holds which program."""

    def __init__(self, rosters: dict):
        self.rosters = rosters
        self.units: dict[tuple, list[dict]] = {}
        self.holdings: set[tuple] = set()  # (program, subtype, id_number)
        for program in ("dibao", "tekun", "orphan", "disability"):
            for row in rosters.get(program, []):
                pid = row["id_number"]
                if program == "dibao":
                    self.units.setdefault(("dibao", row["household_id"]), []).append(row)
                elif program == "disability":
                    sub = row["subsidy_type"]
                    unit = "disability_living" if sub == "生活补贴" else "disability_nursing"
                    self.units[(unit, pid)] = [row]
                    self.holdings.add(("disability", sub, pid))
                else:
                    self.units[(program, pid)] = [row]
                self.holdings.add((program, "", pid))

    def holds(self, spec: str, pid: str) -> bool:
        # OPEN: "holding" a program for exclusions means having an accepted row on its roster that
        # month, whether or not that program ends up paying the person.
        program, _, sub = spec.partition(":")
        return (program, sub, pid) in self.holdings

    def excluded(self, ref, ledger_program: str, pid: str) -> bool:
        """True if a pay_a_only exclusion takes this program away from the person this month."""
        # D8: an empty exclusions.csv (header only, no rows) excludes no combination: everyone is paid.
        own = {"disability_living": "disability:生活补贴", "disability_nursing": "disability:护理补贴"}
        own_spec = own.get(ledger_program, ledger_program)
        for rule in ref.exclusions:
            b = rule["program_b"]
            if rule["action"] == "pay_a_only" and (own_spec == b or own_spec.split(":")[0] == b) \
                    and self.holds(rule["program_a"], pid):
                return True
        return False


@dataclass
class Due:
    amount: Decimal
    status: str           # payable | held
    payee: str            # ID number the program line stands on
    region: str
    members: list         # (id_number, region, urban_rural) of the people whose price subsidy it carries


def due(ref, month: RosterMonth, unit, s, p, dead) -> Due | None:
    """What is owed to a unit for service month S, as payroll P sees it, from the given roster month."""
    # OPEN: an earlier month is always recomputed with the deaths known NOW (not those known then).
    program, _ = unit
    rows = month.units.get(unit)
    if not rows:
        return None
    if program == "dibao":
        return dibao_due(ref, month, rows, s, p, dead)
    row = rows[0]
    pid, region, ur = row["id_number"], row["region_code"], row["urban_rural"]
    if not entitled(row, s) or not alive(pid, s, dead) or month.excluded(ref, program, pid):
        return None
    # D3: every standard below (tekun basic, tekun care by care level, orphans by placement, the
    # living subsidy, and dibao's) is required: missing for the month it is a ReferenceGap.
    if program == "tekun":
        # OPEN: tekun/basic is looked up with category = placement, so '*' rows (the sample) apply to both.
        amount = (standard(ref, "tekun", "basic", region, ur, row.get("placement"), p, s)
                  + standard(ref, "tekun", "care", region, ur, row["care_level"], p, s))
    elif program == "orphan":
        if s > orphan_last_month(pid):
            return None  # paid through the month of the 18th birthday, not after
        amount = standard(ref, "orphan", "basic", region, ur, row["placement"], p, s)
    elif program == "disability_living":
        # OPEN: "member of a dibao household that month" = has a row on that month's dibao roster,
        # whether or not the household's gap makes it eligible.
        if not month.holds("dibao", pid):
            return None
        amount = standard(ref, "disability", "living", region, ur, row["disability_grade"], p, s)
    else:  # disability_nursing
        # D3: a grade for which standards.csv has no disability/nursing version (for this county and
        # urban_rural, at any date) is not eligible: the row is turned away, no line, no ReferenceGap.
        # A grade that has nursing versions, none of them in force for S, is still a gap (rule 12).
        grade = row["disability_grade"]
        if not any(r["program"] == "disability" and r["component"] == "nursing"
                   and region.startswith(r["region_code"]) and r["urban_rural"] in (ur, "*")
                   and r["category"] in (grade, "*") for r in ref.standards):
            return None
        amount = standard(ref, "disability", "nursing", region, ur, grade, p, s)
    return Due(amount, "payable", pid, region, [(pid, region, ur)])


def dibao_due(ref, month, rows, s, p, dead) -> Due | None:
    head = next(r for r in rows if r["relation"] == HEAD)
    # OPEN: the household's entitlement is the head's enrolled_from/enrolled_to; each member also
    # counts only inside their own entitlement.
    if not entitled(head, s):
        return None
    # A death changes nothing in the household's sum (brief 6): the county re-assesses the household
    # and delivers the new size; until then it is paid (member died) or held (head died) as delivered.
    counted = [r for r in rows if entitled(r, s) and not month.excluded(ref, "dibao", r["id_number"])]
    if not counted:
        return None
    # OPEN: the household's county and urban_rural (hence its standard) are those on the head's row.
    region, ur, n = head["region_code"], head["urban_rural"], len(counted)
    std = standard(ref, "dibao", "standard", region, ur, None, p, s)
    # OPEN: the assessed household income is kept whole when a member is excluded. (A death does not
    # touch the sum at all: size, income and the dead member's add-on stay as delivered.)
    gap = std * n - Decimal(head["household_income"] or "0")
    if gap <= 0:
        return None  # not eligible, whatever the floor
    floor = standard(ref, "dibao", "floor", region, ur, None, p, s, required=False)
    amount = max(gap, floor * n) if floor is not None else gap
    for r in counted:  # the single largest add-on per member: add-ons do not stack
        classes = [c.strip() for c in (r.get("class_category") or "").split(";") if c.strip()]
        if classes:
            amount += max(standard(ref, "dibao", "class_addon", region, ur, c, p, s) for c in classes)
    # the head died before S: still computed from the roster as delivered, but held for review
    status = "payable" if alive(head["id_number"], s, dead) else "held"
    # the people the price subsidy covers: the counted members still alive in S (a dead member gets no
    # subsidy; a dead head neither, and the survivors' subsidies are held with the household line)
    members = [(r["id_number"], r["region_code"], r["urban_rural"]) for r in counted
               if alive(r["id_number"], s, dead)]
    return Due(fen(amount), status, head["id_number"], region, members)


# ----------------------------------------------------------------------------- the history
@dataclass
class Entry:
    """A line written in some payroll, with what produced it and its live receivables (by cause)."""
    line: Line
    unit: tuple
    roster_month: str
    recovered: dict = field(default_factory=dict)  # dead person's ID -> receivable amount
    restated: bool = False  # D6: a held month of a held unit recorded again (owed, not a top-up)


class History:
    """The payrolls so far. The history starts with the first payroll month: no arrears before it."""

    def __init__(self, ref: Reference):
        self.ref = ref
        self.rosters: dict[str, RosterMonth] = {}
        self.dead: dict[str, str] = {}             # ID -> death month, as known now
        self.entries: dict[tuple, list[Entry]] = {}  # (unit, service month) -> entries in payroll order

    # what has been claimed for a unit's service month: payable lines net of live receivables,
    # plus held arrears top-ups (owed already; held regular lines are not counted, they are withheld,
    # nor are D6's held restatements of a held unit's months: those are withheld too).
    # OPEN: a held arrears top-up (rule 4's last bullet, held for review) counts as claimed, so it is
    # written once, not again every month: D6 restates the months of a held unit, not top-ups.
    # OPEN: later back pay for a month with a receivable is computed against paid minus receivable.
    def claimed(self, unit, s) -> Decimal:
        total = Decimal("0")
        for e in self.entries.get((unit, s), []):
            # D10: a held line (a top-up held for review, a held month) is owed, not claimed: each
            # payroll states it again until it is paid
            if e.line.status == "payable":
                total += e.line.amount - sum(e.recovered.values())
        return total

    def was_paid(self, unit, s) -> bool:
        return any(e.line.status == "payable" for e in self.entries.get((unit, s), []))

    def record(self, line, unit, roster_month, restated=False):
        self.entries.setdefault((unit, line.service_month), []).append(Entry(line, unit, roster_month,
                                                                             restated=restated))

    def paying_roster(self, unit, s) -> str:
        """The roster month of the first payable line for the unit's service month S."""
        return next(e.roster_month for e in self.entries[(unit, s)] if e.line.status == "payable")

    def make_line(self, p, s, program, line_type, payee, amount, status, region):
        shares = line_fund(self.ref, program, line_type, region, s)
        return Line(p, s, program, line_type, payee, fen(amount), status, split_funds(fen(amount), shares))

    def learn_deaths(self, mi: MonthInput) -> list[Receivable]:
        p = mi.payroll_month
        # OPEN: withdrawals are applied before this month's new reports (a re-report this month stands).
        for pid in mi.withdrawn_deaths:  # alive again; receivables it created are cancelled
            self.dead.pop(pid, None)
            for entries in self.entries.values():
                for e in entries:
                    e.recovered.pop(pid, None)
        new = []
        for d in mi.deaths:
            month = d["death_date"][:7]
            if month > p:
                continue  # a death dated after the month it was reported in is a finding, not applied
            # OPEN: a death already known keeps its first reported date.
            if d["id_number"] not in self.dead:
                self.dead[d["id_number"]] = month
                new.append(d["id_number"])
        receivables = []
        for pid in new:
            for (_unit, s), entries in self.entries.items():
                if s > self.dead[pid]:
                    receivables += self.recover(entries, pid)
        return receivables

    def recover(self, entries, cause) -> list[Receivable]:
        """The payable lines standing on the dead person for a service month after the death month.

        That is the dead person's own lines (regular, arrears, price subsidy) and, where the dead
        person is a dibao household's head, the household's program lines (they stand on the head):
        all of them would have been held or not written, so each is recovered whole (brief 6).
        """
        # OPEN: the price subsidies of a dead head's surviving members are left alone (they are not
        # the dead person's lines); the household line where a non-head member died is not a
        # receivable either (the household is paid as delivered): only lines on the dead person are.
        # OPEN: "the household's program lines" are those whose line stands on the dead person, i.e.
        # households the dead person headed in the roster that paid the line.
        out = []
        for e in entries:
            ln = e.line
            left = ln.amount - sum(e.recovered.values())
            if ln.status != "payable" or ln.id_number != cause or left <= 0:
                continue
            e.recovered[cause] = e.recovered.get(cause, Decimal("0")) + left
            out.append(Receivable(ln.payroll_month, ln.service_month, ln.program, ln.line_type, ln.id_number, left))
        return out

    def run_month(self, mi: MonthInput) -> MonthResult:
        p = mi.payroll_month
        # D9: refused before anything else if a program is not funded across the province
        counties = {r["region_code"] for rows in mi.rosters.values() for r in rows}
        check_province_funded(self.ref, p, counties)
        check_province_standards(self.ref, p, counties)  # D17
        now = self.rosters[p] = RosterMonth(mi.rosters)
        receivables = self.learn_deaths(mi)
        lines, pending = [], []

        # 1. regular lines: service month = payroll month, from this month's roster
        regular = {}
        for unit in sorted(now.units):
            d = due(self.ref, now, unit, p, p, self.dead)
            if d:
                regular[unit] = d
                pending.append((self.make_line(p, p, unit[0], "regular", d.payee, d.amount, d.status, d.region),
                                unit, p, False))

        # 2. arrears for earlier service months of this history (raise back pay, late enrolment,
        #    months withheld because of a death now withdrawn): what is due now minus what was claimed.
        # OPEN: price subsidies withheld because of a withdrawn death are not paid as arrears
        #    (the price subsidy is never back paid); only program lines are. So a withdrawn non-head
        #    member's death owes nothing more (the household was paid as delivered; only that
        #    member's subsidy was withheld), and a withdrawn head's death owes the held household lines.
        #    D6: and, for a held unit, every earlier month it still holds, recorded again as held arrears.
        withdrawn = set(mi.withdrawn_deaths)
        for s in sorted(m for m in self.rosters if m < p):
            then = self.rosters[s]
            # every unit with a program line for S (paid, or held: D6), ...
            candidates = {u for (u, m) in self.entries if m == s and u[0] != "price_subsidy"}
            # D16: ... whose own payment the withdrawn death withheld (the person's, or the household
            # of a head; a member's death withheld only the member's price subsidy, see above)
            candidates |= {u for u, rows in then.units.items()
                           if any(r["id_number"] in withdrawn and (u[0] != "dibao" or r["relation"] == HEAD)
                                  for r in rows)}
            candidates |= {u for u in now.units if u not in then.units}  # late enrolment
            for unit in sorted(candidates):
                paid = self.was_paid(unit, s)
                if unit in then.units:
                    roster_month = s          # back pay uses the roster the unit had in payroll S
                elif paid:
                    # D2: a month paid as late-enrolment arrears is settled once, from the roster of the
                    # payroll that paid it; a later roster does not reach back into it, only a raise
                    # does (recomputed from that same roster; its top-up is held, see below).
                    roster_month = self.paying_roster(unit, s)
                elif unit in now.units:
                    roster_month = p          # late enrolment (or a held late month, D6): this roster
                else:  # a held late month of a unit now on no roster: the roster that last computed it
                    roster_month = self.entries[(unit, s)][-1].roster_month
                d = due(self.ref, self.rosters[roster_month], unit, s, p, self.dead)
                if not d:
                    continue
                owed = d.amount - self.claimed(unit, s)
                if owed <= 0:
                    continue
                restated = False
                if d.status == "held":
                    # D6: a held unit's month that was never paid (held, or never computed: late
                    # enrolment while held) is recorded again in each payroll as a held arrears line,
                    # with the amount due now; on release it is paid once (claimed ignores these).
                    # A month that was paid (and became a receivable when the head's death was
                    # learnt) is not restated: it is a receivable under review, not withheld money.
                    if paid:
                        continue
                    status, restated = "held", True
                else:
                    # only one payable arrears line per person, program and service month
                    # OPEN: this applies to any second arrears (withdrawal or raise), not only raises.
                    second = any(e.line.line_type == "arrears" and e.line.status == "payable"
                                 for e in self.entries.get((unit, s), []))
                    status = "held" if second else "payable"
                pending.append((self.make_line(p, s, unit[0], "arrears", d.payee, owed, status, d.region),
                                unit, roster_month, restated))

        # 3. price subsidy: once per covered person, for the payroll month only
        # OPEN: a person on both disability subsidies is carried by the living subsidy's program.
        covered: dict[str, dict] = {}
        for unit, d in regular.items():
            carrier = fund_program(unit[0])
            for pid, region, ur in d.members:
                covered.setdefault(pid, {}).setdefault(carrier, (unit[0], d.status, region, ur))
        if covered:
            rule = price_rule(self.ref, p)
            rate = subsidy_rate(rule, cpi_row(self.ref, add_months(p, -int(rule["index_lag"]))))
            programs = [x.strip() for x in rule["programs"].split(";") if x.strip()]
            for pid in sorted(covered) if rate is not None else []:
                carrier = next((c for c in programs if c in covered[pid]), None)
                if carrier is None:
                    continue
                # OPEN: the standard is the dibao standard for the county and urban_rural on the person's
                # own row in the carrying program; the line is held when the carrying line is held.
                program, status, region, ur = covered[pid][carrier]
                std = standard(self.ref, "dibao", "standard", region, ur, None, p, p)
                # OPEN: one rounding of the whole product standard x rate / 100 x multiplier.
                exact = std * rate / 100 * Decimal(rule["multiplier"])
                amount = exact.quantize(YUAN if rule["rounding"] == "yuan" else FEN, ROUND_HALF_UP)
                amount = max(amount, Decimal(rule["minimum"] or "0"))
                if amount <= 0:
                    continue  # OPEN: a zero subsidy writes no line
                pending.append((self.make_line(p, p, program, "price_subsidy", pid, amount, status, region),
                                ("price_subsidy", pid), p, False))

        for line, unit, roster_month, restated in pending:
            self.record(line, unit, roster_month, restated)
            lines.append(line)
        return MonthResult(lines, receivables)


def run_history(reference: Reference, months: list[MonthInput]) -> dict[str, MonthResult]:
    """payroll_month -> what that payroll writes; ReferenceGap for the first month that cannot be paid."""
    if not months:
        return {}
    history = History(reference)
    return {mi.payroll_month: history.run_month(mi) for mi in months}
