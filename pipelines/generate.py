"""Sample inbox generator: `doudi generate --inbox DIR --months 2020-01..2020-04 --persons N --seed S`.

Builds a population of Liaoning beneficiaries that evolves month to month (enrolments, exits,
deaths, moves between counties, account changes) and writes, for each month, an inbox that follows
the contract (sections 1 and 2) in every delivery format it allows: UTF-8 and GBK CSV, UTF-8 with
BOM, XLSX with a title row above the header, Parquet. It plants realistic defects at configurable
rates and writes `DIR/ground_truth.csv` naming each one, so tests can measure what doudi finds.

Vectorised with numpy and pandas so that bench/ can generate province-sized inboxes; the same seed
always gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
import zlib
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.idnumbers import check_digits
from pipelines.months import month_range, months_between, shift_month
from pipelines.settings import DEFAULT_REFERENCE
from pipelines.vocabulary import (
    COMMON_COLUMNS,
    DISABILITY_CATEGORIES,
    DISABILITY_GRADES,
    EXTRA_ALIASES,
    PROGRAM_COLUMNS,
)

# Defect types the generator plants, with default rates (share of eligible rows per month).
DEFAULT_DEFECT_RATES = {
    "bad_check_digit": 0.002,  # check digit wrong -> ID_CHECK_DIGIT
    "id_typo": 0.002,  # one body digit mistyped, check digit recomputed by the typist's tool
    "id_swap": 0.001,  # two adjacent body digits swapped, check digit recomputed
    "dup_in_file": 0.002,  # same row twice in a file -> duplicate
    "dup_across_counties": 0.001,  # same person listed by a second county -> duplicate
    "exclusive_programs": 0.002,  # a dibao member also on the tekun roster -> exclusive_programs
    "deceased_listed": 0.3,  # share of last month's deaths still listed -> deceased_listed
    "account_other_holder": 0.002,  # account holder is somebody else -> account_holder_mismatch
    "household_size_mismatch": 0.002,  # household_size != member rows -> household quarantined
    "malformed_month": 0.001,  # enrolment month unreadable -> MONTH_INVALID
    "sex_mismatch": 0.001,  # sex disagrees with the ID -> SEX_MISMATCH
    "bad_account": 0.001,  # account with letters or too short -> BANK_ACCOUNT_INVALID
    "negative_income": 0.001,  # household income below zero -> HOUSEHOLD_INCOME_INVALID
    "orphan_aged_out": 0.3,  # share of orphans who turned 18 last month still listed -> ORPHAN_AGED_OUT
    "duplicate_delivery": 0.02,  # share of files delivered twice (same bytes)
    "corrected_file": 0.02,  # share of files followed by a corrected version
    "on_public_payroll": 0.002,  # a dibao/tekun person on the public payroll extract -> review finding
    "owns_vehicle": 0.002,  # ... in the vehicle registry -> review finding
    "owns_business": 0.002,  # ... in the business registry -> review finding
    "guardian_account_changed": 0.01,  # an orphan's guardian, account and holder all change -> review
    # temporary assistance (临时救助): shares of the month's cases (at least one each where any is drawn)
    "temporary_above_cap": 0.1,  # above the township's cap, no 一事一议 number -> held
    "temporary_repeat": 0.1,  # the household's case once more than the event allows in 12 months -> held
    "temporary_deceased": 0.1,  # a case for someone the death registry has dead before the event -> not paid
    "temporary_bad_event": 0.1,  # an event outside the vocabulary -> EVENT_TYPE_INVALID
    "temporary_no_approval": 0.1,  # no approval number -> APPROVAL_NO_MISSING
    "temporary_migrant": 0.2,  # a worker from another province: accepted under the approving county, paid
}
# What the pipeline is expected to do with each planted defect (for tests and bench).
EXPECTED_OUTCOME = {
    "bad_check_digit": ("quarantined", "ID_CHECK_DIGIT"),
    "id_typo": ("finding", "near_duplicate"),
    "id_swap": ("finding", "near_duplicate"),
    "dup_in_file": ("duplicate", "same_person_same_file"),
    "dup_across_counties": ("duplicate", "duplicate_across_counties"),
    "exclusive_programs": ("finding", "exclusive_programs"),
    "deceased_listed": ("finding", "deceased_listed"),
    "account_other_holder": ("finding", "account_holder_mismatch"),
    "household_size_mismatch": ("quarantined", "HOUSEHOLD_SIZE_MISMATCH"),
    "malformed_month": ("quarantined", "MONTH_INVALID"),
    "sex_mismatch": ("quarantined", "SEX_MISMATCH"),
    "bad_account": ("quarantined", "BANK_ACCOUNT_INVALID"),
    "negative_income": ("quarantined", "HOUSEHOLD_INCOME_INVALID"),
    "orphan_aged_out": ("quarantined", "ORPHAN_AGED_OUT"),
    "duplicate_delivery": ("file", "file_duplicate_delivery"),
    "corrected_file": ("file", "file_superseded"),
    "on_public_payroll": ("finding", "registry_public_payroll"),
    "owns_vehicle": ("finding", "registry_vehicle"),
    "owns_business": ("finding", "registry_business"),
    "guardian_account_changed": ("finding", "account_changed_with_holder"),
    "watch_income_drop": ("watch", "income_drop"),
    "watch_household_size_change": ("watch", "household_size_change"),
    "watch_low_income_unassisted": ("watch", "low_income_unassisted"),
    "watch_near_standard": ("watch", "near_standard"),
    "watch_recent_exit": ("watch", "recent_exit"),
    "watch_orphan_ageing_out": ("watch", "orphan_ageing_out"),
    "watch_age_threshold": ("watch", "age_threshold"),
    "visit_tekun_dispersed": ("visit", "tekun_dispersed"),
    "visit_dibao_elderly_alone": ("visit", "dibao_elderly_alone"),
    "visit_dispersed_orphan": ("visit", "dispersed_orphan"),
    "visit_nursing_subsidy": ("visit", "nursing_subsidy"),
    "visit_dibao_ill_or_disabled": ("visit", "dibao_ill_or_disabled"),
    "temporary_above_cap": ("finding", "temporary_above_cap"),
    "temporary_repeat": ("finding", "temporary_repeat_within_12_months"),
    "temporary_deceased": ("finding", "temporary_deceased_before_event"),
    "temporary_bad_event": ("quarantined", "EVENT_TYPE_INVALID"),
    "temporary_no_approval": ("quarantined", "APPROVAL_NO_MISSING"),
    "temporary_migrant": ("accepted", "one_off"),
}
# Temporary assistance: the share of counties that deliver cases in a month, cases per 100 persons, and
# the provinces people from elsewhere come from (a county-level code of each).
TEMPORARY_COUNTY_SHARE = 0.03
TEMPORARY_CASES_PER_100 = 1.0
OTHER_PROVINCE_CODES = ("110105", "130102", "220102", "230102", "370102", "410102", "510104")
# Registry extracts (contract section 3) the generator writes, with the defect each planted match is,
# and the evidence columns each registry carries beside id_number and name.
REGISTRIES = {
    "public_payroll": ("on_public_payroll", ("employer",)),
    "vehicles": ("owns_vehicle", ("plate", "vehicle_type")),
    "businesses": ("owns_business", ("business_name", "credit_code")),
}
# Watch-list and visit-list cases (issue 20) the generator plants from the second month, recorded in
# ground_truth.csv as `watch_<rule>` / `visit_<rule>` with the head's (or the person's) ID: what that
# month's list must carry (pipelines/truth.py scores them). One of each rule of vocabulary.WATCH_RULES
# and VISIT_RULES, at the thresholds policy_parameters.csv has in force for the month.
WATCH_PLANTS = {d: rule for d, (kind, rule) in EXPECTED_OUTCOME.items() if kind == "watch"}
VISIT_PLANTS = {d: rule for d, (kind, rule) in EXPECTED_OUTCOME.items() if kind == "visit"}
ID_HEADERS = ("id_number", *COMMON_COLUMNS["id_number"])
FILE_DEFECTS = {"duplicate_delivery", "corrected_file"}

FORMATS = ("csv_utf8", "csv_utf8_bom", "csv_gbk", "xlsx", "parquet")
FORMAT_WEIGHTS = (0.40, 0.15, 0.20, 0.20, 0.05)
# Region codes abolished since: IDs issued under them stay valid for life.
HISTORICAL_BIRTH_CODES = ("210122", "210121", "210282", "210221", "210112")
BANK_TYPED = {  # how caseworkers type the bank name
    "ICBC": ("中国工商银行", "工商银行"),
    "ABC": ("中国农业银行", "农业银行"),
    "BOC": ("中国银行",),
    "CCB": ("中国建设银行", "建设银行"),
    "BOCOM": ("交通银行",),
    "PSBC": ("中国邮政储蓄银行", "邮储银行"),
    "SJB": ("盛京银行",),
    "LNRCU": ("辽宁省农村信用社", "农村信用社"),
}
BANK_CODES = tuple(BANK_TYPED)
BANK_WEIGHTS = (0.18, 0.2, 0.1, 0.15, 0.05, 0.17, 0.05, 0.10)
PERSON_COLUMNS = [
    "id_number", "name", "sex", "birth", "county", "urban_rural", "bank", "account", "program",
    "enrolled_from", "alive", "death_month", "household_id", "relation", "household_income",
    "class_category", "placement", "care_level", "institution_code", "holder", "guardian_name",
    "guardian_id_number", "disability_category", "disability_grade", "living", "nursing",
]
CATEGORY_NAMES = {v: k for k, v in DISABILITY_CATEGORIES.items()}
GRADE_NAMES = {v: k for k, v in DISABILITY_GRADES.items()}


@dataclass
class GeneratorConfig:
    out: Path
    months: list[str]
    persons: int = 2000
    seed: int = 20200101
    defect_scale: float = 1.0
    reference: Path = DEFAULT_REFERENCE
    defect_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DEFECT_RATES))
    # One shard of a population too large for one process (bench/shards.py merges them): shard k of
    # n draws ID sequence numbers, card numbers, household and institution numbers from its own
    # block, so no two shards hand out the same identifier. shards=1 is the whole population.
    shard: int = 0
    shards: int = 1

    def rate(self, kind: str) -> float:
        return min(1.0, self.defect_rates[kind] * self.defect_scale)


def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


class Population:
    """Every person doudi may pay, with their state in the current month."""

    def __init__(self, cfg: GeneratorConfig):
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        regions = pd.read_csv(cfg.reference / "regions.csv", dtype=str)
        self.counties = regions["region_code"].to_numpy()
        # Bigger cities get more people: Shenyang and Dalian weigh more.
        weight = np.where(np.isin(regions["city_code"], ["2101", "2102"]), 2.0, 1.0)
        self.county_weights = weight / weight.sum()
        from faker.providers.person.zh_CN import Provider

        self.surnames = np.array(list(Provider.last_names.keys()))
        w = np.array(list(Provider.last_names.values()), dtype=float)
        self.surname_weights = w / w.sum()
        self.given_male = np.array(Provider.first_names_male)
        self.given_female = np.array(Provider.first_names_female)
        self.used_ids: set[str] = set()
        self.used_accounts: set[str] = set()
        self.next_household = 1 + cfg.shard * 10**7
        self.next_institution = 1 + cfg.shard * 1000
        self.id_sequences = 500 // cfg.shards  # the ID's 3-digit sequence, halved by the sex digit
        self.account_block = 10**14 // cfg.shards
        self.people = pd.DataFrame()
        self.institutions: dict[str, pd.DataFrame] = {}

    # --- building blocks -------------------------------------------------------------------
    def _names(self, sex: np.ndarray) -> np.ndarray:
        n = len(sex)
        rng = self.rng
        sur = rng.choice(self.surnames, n, p=self.surname_weights)
        g1 = np.where(sex == "男", rng.choice(self.given_male, n), rng.choice(self.given_female, n))
        g2 = np.where(sex == "男", rng.choice(self.given_male, n), rng.choice(self.given_female, n))
        two = rng.random(n) < 0.7
        return np.char.add(np.char.add(sur.astype(str), g1.astype(str)), np.where(two, g2, "").astype(str))

    def _ids(self, birth_codes: np.ndarray, births: np.ndarray, sex: np.ndarray) -> np.ndarray:
        rng = self.rng
        n = len(births)
        out = np.empty(n, dtype=object)
        todo = np.arange(n)
        while len(todo):
            first = self.cfg.shard * self.id_sequences
            seq = rng.integers(first, first + self.id_sequences, len(todo)) * 2 + np.where(sex[todo] == "男", 1, 0)
            body = np.char.add(
                np.char.add(birth_codes[todo].astype(str), births[todo].astype(str)),
                np.char.zfill(seq.astype(str), 3),
            )
            ids = np.char.add(body, check_digits(body))
            again = []
            for k, i in enumerate(todo):
                v = str(ids[k])
                if v in self.used_ids:
                    again.append(i)
                else:
                    self.used_ids.add(v)
                    out[i] = v
            todo = np.array(again, dtype=int)
        return out

    def _accounts(self, n: int) -> np.ndarray:
        """Fresh 16- or 19-digit card numbers, never handed out twice."""
        rng = self.rng
        out = np.empty(n, dtype=object)
        todo = np.arange(n)
        while len(todo):
            first = self.cfg.shard * self.account_block
            body = np.char.zfill(rng.integers(first, first + self.account_block, len(todo)).astype(str), 14)
            tail = np.char.zfill(rng.integers(0, 1000, len(todo)).astype(str), 3)
            long = rng.random(len(todo)) < 0.5
            accts = np.where(long, np.char.add(np.char.add("62", body), tail), np.char.add("62", body))
            again = []
            for k, i in enumerate(todo):
                a = str(accts[k])
                if a in self.used_accounts:
                    again.append(i)
                else:
                    self.used_accounts.add(a)
                    out[i] = a
            todo = np.array(again, dtype=int)
        return out

    def new_people(self, n: int, month: str, program: str, age_range: tuple[int, int] = (18, 80),
                   age_lo: np.ndarray | None = None, age_hi: np.ndarray | None = None, **fixed) -> pd.DataFrame:
        rng = self.rng
        if n == 0:
            return pd.DataFrame(columns=PERSON_COLUMNS)
        lo = np.full(n, age_range[0]) if age_lo is None else np.asarray(age_lo)
        hi = np.full(n, age_range[1]) if age_hi is None else np.asarray(age_hi)
        sex = fixed.pop("sex", None)
        sex = rng.choice(np.array(["男", "女"]), n) if sex is None else np.asarray(sex)
        age_days = rng.integers(lo * 365 + 1, hi * 365)
        ref = np.datetime64(f"{month}-01")
        birth = (ref - age_days.astype("timedelta64[D]")).astype("datetime64[D]")
        births = np.char.replace(np.datetime_as_string(birth, unit="D").astype(str), "-", "")
        county = fixed.pop("county", None)
        if county is None:
            county = rng.choice(self.counties, n, p=self.county_weights)
        county = np.broadcast_to(np.asarray(county, dtype=object), (n,))
        urban_rural = fixed.pop("urban_rural", None)
        if urban_rural is None:
            urban_rural = rng.choice(np.array(["城市", "农村"]), n, p=[0.45, 0.55])
        hist = rng.random(n) < 0.05
        birth_code = np.where(hist, rng.choice(np.array(HISTORICAL_BIRTH_CODES), n), county.astype(str))
        df = pd.DataFrame({c: None for c in PERSON_COLUMNS}, index=range(n))
        df["id_number"] = self._ids(np.asarray(birth_code), births, sex)
        df["name"] = self._names(sex)
        df["sex"] = sex
        df["birth"] = pd.to_datetime(births, format="%Y%m%d")
        df["county"] = county
        df["urban_rural"] = urban_rural
        df["bank"] = rng.choice(np.array(BANK_CODES), n, p=BANK_WEIGHTS)
        df["account"] = self._accounts(n)
        df["program"] = program
        df["enrolled_from"] = month
        df["alive"] = True
        df["household_income"] = np.nan
        df["living"] = False
        df["nursing"] = False
        for k, v in fixed.items():
            df[k] = v
        return df

    def _institution(self, county: str, kind: str) -> tuple[str, str, str, str]:
        code = f"{county}{kind}{self.next_institution:04d}"
        self.next_institution += 1
        cname = "福利院" if kind == "E" else "儿童福利院"
        name = f"{county}{cname}{code[-2:]}"
        return code, name, str(self.rng.choice(np.array(BANK_CODES), p=BANK_WEIGHTS)), self._accounts(1)[0]

    # --- programs --------------------------------------------------------------------------
    def add_dibao_households(self, n_households: int, month: str, back_months: np.ndarray | None = None) -> None:
        rng = self.rng
        if n_households <= 0:
            return
        sizes = rng.choice([1, 2, 3, 4, 5], n_households, p=[0.38, 0.30, 0.18, 0.10, 0.04])
        hh_county = rng.choice(self.counties, n_households, p=self.county_weights)
        hh_ur = rng.choice(np.array(["城市", "农村"]), n_households, p=[0.45, 0.55])
        hh_seq = np.arange(self.next_household, self.next_household + n_households)
        self.next_household += n_households
        hh_ids = np.char.add(hh_county.astype(str), np.char.zfill(hh_seq.astype(str), 8))
        member_hh = np.repeat(np.arange(n_households), sizes)
        position = np.arange(len(member_hh)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        other = rng.choice(np.array(["子女", "父母", "其他"]), len(member_hh), p=[0.7, 0.25, 0.05])
        relation = np.where(position == 0, "户主", np.where(position == 1, "配偶", other))
        age_lo = np.select([relation == "子女", relation == "父母", relation == "其他"], [1, 60, 18], 25)
        age_hi = np.select([relation == "子女", relation == "父母", relation == "其他"], [17, 90, 60], 85)
        head_sex = rng.choice(np.array(["男", "女"]), n_households)
        opposite = np.where(head_sex == "男", "女", "男")
        sex = np.where(position == 0, head_sex[member_hh],
                       np.where(position == 1, opposite[member_hh], rng.choice(np.array(["男", "女"]), len(member_hh))))
        df = self.new_people(len(member_hh), month, "dibao", age_lo=age_lo, age_hi=age_hi, sex=sex,
                             county=hh_county[member_hh], urban_rural=hh_ur[member_hh])
        df["relation"] = relation
        df["household_id"] = hh_ids[member_hh]
        # household income: somewhere below the standard (a few near it, to exercise the floor)
        income = np.round(rng.uniform(0, 350, n_households) * sizes * rng.choice([0.3, 1.0], n_households), 2)
        # a few households sit near or above the standard: the floor and the not-eligible rule apply
        near = rng.random(n_households) < 0.05
        income = np.where(near, np.round(rng.uniform(550, 760, n_households) * sizes, 2), income)
        df["household_income"] = income[member_hh]
        if back_months is not None:
            months = np.array([shift_month(month, -int(b)) for b in back_months])
            df["enrolled_from"] = months[member_hh]
        age = self.ages(df, month)
        cls = np.where(age >= 60, "老年", np.where(age < 18, "未成年", ""))
        sick = rng.random(len(df)) < 0.05
        cls = np.where(sick & (cls == ""), "重病", np.where(sick & (cls == "老年"), "老年;重病", cls))
        df["class_category"] = np.where(cls == "", None, cls)
        # some members are disabled: living subsidy; grade 1-2 also nursing
        disabled = rng.random(len(df)) < 0.15
        self._make_disabled(df, disabled)
        df.loc[disabled, "living"] = True
        self._append(df)

    def _append(self, df: pd.DataFrame) -> None:
        if len(df):
            self.people = pd.concat([self.people, df], ignore_index=True) if len(self.people) else df
            self.people["birth"] = pd.to_datetime(self.people["birth"])

    def _make_disabled(self, df: pd.DataFrame, mask: np.ndarray) -> None:
        rng = self.rng
        n = int(mask.sum())
        df.loc[mask, "disability_category"] = rng.choice(list("1234567"), n)
        grade = rng.choice(list("1234"), n, p=[0.2, 0.3, 0.25, 0.25])
        df.loc[mask, "disability_grade"] = grade
        df.loc[mask, "nursing"] = np.isin(grade, ["1", "2"])

    def add_tekun(self, n: int, month: str) -> None:
        rng = self.rng
        elderly = rng.random(n) < 0.8
        df_e = self.new_people(int(elderly.sum()), month, "tekun", (60, 95))
        df_y = self.new_people(int((~elderly).sum()), month, "tekun", (20, 59))
        # working-age tekun persons qualify by disability: they carry a certificate
        self._make_disabled(df_y, np.ones(len(df_y), dtype=bool))
        df_y["nursing"] = False  # tekun excludes both disability subsidies: not on that roster
        df = pd.concat([df_e, df_y], ignore_index=True)
        df["placement"] = np.where(rng.random(len(df)) < 0.3, "集中供养", "分散供养")
        df["care_level"] = rng.choice(["全自理", "半护理", "全护理"], len(df), p=[0.6, 0.25, 0.15])
        self._place_in_institutions(df, df["placement"] == "集中供养", "E")
        self._append(df)

    def add_orphans(self, n: int, month: str) -> None:
        rng = self.rng
        df = self.new_people(n, month, "orphan", (1, 18))
        df["placement"] = rng.choice(["机构养育", "社会散居", "事实无人抚养"], n, p=[0.3, 0.5, 0.2])
        inst = (df["placement"] == "机构养育").to_numpy()
        self._place_in_institutions(df, inst, "C")
        guardians = self.new_people(int((~inst).sum()), month, "guardian", (30, 70))
        df.loc[~inst, "guardian_name"] = guardians["name"].to_numpy()
        df.loc[~inst, "guardian_id_number"] = guardians["id_number"].to_numpy()
        df.loc[~inst, "bank"] = guardians["bank"].to_numpy()
        df.loc[~inst, "account"] = guardians["account"].to_numpy()
        df["holder"] = np.where(inst, df["holder"] if "holder" in df else None, df["guardian_name"])
        self._append(df)

    def add_disabled_only(self, n: int, month: str) -> None:
        """Severely disabled people outside dibao: nursing subsidy only."""
        df = self.new_people(n, month, "disability", (18, 80))
        self._make_disabled(df, np.ones(n, dtype=bool))
        df["disability_grade"] = self.rng.choice(["1", "2"], n)
        df["nursing"] = True
        self._append(df)

    def _place_in_institutions(self, df: pd.DataFrame, mask, kind: str) -> None:
        mask = np.asarray(mask)
        if "holder" not in df:
            df["holder"] = None
        for county in pd.unique(df.loc[mask, "county"]):
            if (county, kind) not in self.institutions:
                self.institutions[(county, kind)] = self._institution(county, kind)
            code, name, bank, acct = self.institutions[(county, kind)]
            sel = mask & (df["county"] == county).to_numpy()
            df.loc[sel, ["institution_code", "holder", "bank", "account"]] = [code, name, bank, acct]

    @staticmethod
    def ages(df: pd.DataFrame, month: str) -> np.ndarray:
        ref = pd.Timestamp(f"{month}-01")
        b = df["birth"]
        years = ref.year - b.dt.year - ((ref.month < b.dt.month)).astype(int)
        return years.to_numpy()


def _pick(rng, mask: np.ndarray, rate: float) -> np.ndarray:
    """Indices of a random share `rate` of the rows where mask is true (at least one if any)."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0 or rate <= 0:
        return np.array([], dtype=int)
    k = max(1, int(round(len(idx) * rate)))
    return np.sort(rng.choice(idx, min(k, len(idx)), replace=False))


class Generator:
    def __init__(self, cfg: GeneratorConfig):
        self.cfg = cfg
        self.pop = Population(cfg)
        self.rng = self.pop.rng
        self.truth: list[dict] = []
        self.deaths_last: pd.DataFrame = pd.DataFrame()
        self.withdrawn: set[tuple[str, str]] = set()  # (month, id) dropped by a corrected file
        self.clean_last_month: dict[str, set[str]] = {}  # program -> IDs delivered clean last month
        # dibao members a planted watch case moved out of their household into one of their own
        # (id -> (household_id, relation)), applied to every later roster while the population (and so
        # every random draw made on it, and the rows each roster has) stays as it was
        self.watch_moved: dict[str, tuple[str, str]] = {}
        self.counties_delivered: dict[str, set[str]] = {}  # program -> counties with a file last month
        # people a planted watch or visit case brought onto the rolls (an orphan soon of age, a tekun
        # person near an age threshold, an elderly severely disabled dibao member living alone): kept
        # apart from the population, and put at the head of every later roster, so that every draw
        # made on the population, and every row the main stream writes, stays as it was
        self.watch_people = pd.DataFrame(columns=PERSON_COLUMNS)
        self._reference_tables: dict[str, list[dict]] = {}

    def side_rng(self, month: str, purpose: str) -> np.random.Generator:
        """A generator of its own for defects added later, so the main stream (and with it every
        sample inbox generated before) stays as it was."""
        return np.random.default_rng([self.cfg.seed, _stable_hash(month), _stable_hash(purpose)])

    # --- month evolution -------------------------------------------------------------------
    def seed_population(self, month: str) -> None:
        n = self.cfg.persons
        # shares of persons: dibao ~55% (avg household ~2 persons), tekun 8%, orphans 2%, nursing-only 5%
        self.pop.add_dibao_households(max(1, int(n * 0.55 / 2.0)), month,
                                      back_months=self.rng.integers(3, 30, max(1, int(n * 0.55 / 2.0))))
        self.pop.add_tekun(max(1, int(n * 0.08)), month)
        self.pop.add_orphans(max(1, int(n * 0.02)), month)
        self.pop.add_disabled_only(max(1, int(n * 0.05)), month)
        p = self.pop.people
        back = self.rng.integers(3, 30, len(p))
        not_hh = p["program"] != "dibao"
        p.loc[not_hh, "enrolled_from"] = [shift_month(month, -int(b)) for b in back[not_hh.to_numpy()]]

    def evolve(self, month: str) -> None:
        rng = self.rng
        p = self.pop.people
        active = p["alive"] & p["program"].isin(["dibao", "tekun", "orphan", "disability"])
        # deaths in the previous month, reported by this month's registry extract
        dead = _pick(rng, active.to_numpy(), 0.003)
        prev = shift_month(month, -1)
        p.loc[dead, "alive"] = False
        p.loc[dead, "death_month"] = prev
        self.deaths_last = p.loc[dead].copy()
        # a dibao household whose head died: the next member becomes head, paid to their own card
        for hid in p.loc[dead][p.loc[dead, "relation"] == "户主"]["household_id"]:
            members = p[(p["household_id"] == hid) & p["alive"]]
            if len(members):
                p.loc[members.index[0], "relation"] = "户主"
        # exits: 1% of households and persons leave the rolls
        hh_ids = p.loc[active & (p["program"] == "dibao"), "household_id"].dropna().unique()
        leaving_hh = rng.choice(hh_ids, max(0, int(len(hh_ids) * 0.01)), replace=False) if len(hh_ids) else []
        p.loc[p["household_id"].isin(leaving_hh), "program"] = "exited"
        others = _pick(rng, (active & (p["program"].isin(["tekun", "disability"]))).to_numpy(), 0.01)
        p.loc[others, "program"] = "exited"
        # moves: 0.3% of households move to another county of the same city
        movable = p.loc[p["program"] == "dibao", "household_id"].dropna().unique()
        movers = rng.choice(movable, max(0, int(len(movable) * 0.003)), replace=False) if len(movable) else []
        for hid in movers:
            sel = p["household_id"] == hid
            city = p.loc[sel, "county"].iloc[0][:4]
            options = [c for c in self.pop.counties if c.startswith(city) and c != p.loc[sel, "county"].iloc[0]]
            if options:
                p.loc[sel, "county"] = str(rng.choice(options))
        # account changes: 0.5% of payees open a new account
        payees = (p["account"].notna() & p["institution_code"].isna() & p["guardian_name"].isna()).to_numpy()
        changing = _pick(rng, payees & active.to_numpy(), 0.005)
        p.loc[changing, "account"] = self.pop._accounts(len(changing))
        # enrolments: 1.5% new, a fifth of them with enrolled_from one or two months back
        n_new = max(1, int(self.cfg.persons * 0.015))
        n_hh = max(1, int(n_new * 0.55 / 2))
        back = np.where(rng.random(n_hh) < 0.2, rng.integers(1, 3, n_hh), 0)
        self.pop.add_dibao_households(n_hh, month, back_months=back)
        self.pop.add_tekun(max(1, int(n_new * 0.1)), month)
        self.pop.add_orphans(max(1, int(n_new * 0.03)), month)
        self.pop.add_disabled_only(max(1, int(n_new * 0.05)), month)

    # --- rosters ----------------------------------------------------------------------------
    def rosters(self, month: str) -> dict[str, pd.DataFrame]:
        p = self.pop.people
        alive = p["alive"]
        birth_month = p["birth"].dt.strftime("%Y-%m")
        eighteenth = [shift_month(b, 12 * 18) for b in birth_month]
        orphan_ok = np.array([e >= month for e in eighteenth])
        out = {}
        dibao = p[alive & (p["program"] == "dibao")].copy()
        dibao["household_size"] = dibao.groupby("household_id")["id_number"].transform("count")
        out["dibao"] = dibao
        out["tekun"] = p[alive & (p["program"] == "tekun")].copy()
        out["orphan"] = p[alive & (p["program"] == "orphan") & orphan_ok].copy()
        living = p[alive & (p["program"] == "dibao") & p["living"]].assign(subsidy_type="生活补贴")
        nursing = p[alive & p["program"].isin(["dibao", "disability"]) & p["nursing"]].assign(subsidy_type="护理补贴")
        out["disability"] = pd.concat([living, nursing]).sort_index(kind="stable")
        self._aged_out = p[alive & (p["program"] == "orphan") & ~orphan_ok
                           & np.array([e == shift_month(month, -1) for e in eighteenth])].copy()
        return out

    def plant(self, month: str, rosters: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Plant this month's row-level defects. Each roster gains a `defect` column."""
        rng, cfg = self.rng, self.cfg
        for df in rosters.values():
            df["defect"] = ""
            df["holder"] = df.get("holder")

        def mark(prog, idx, kind):
            df = rosters[prog]
            df.iloc[idx, df.columns.get_loc("defect")] = kind

        # deceased still listed (deaths of last month kept on the roster)
        if len(self.deaths_last):
            keep = self.deaths_last.iloc[_pick(rng, np.ones(len(self.deaths_last), bool), cfg.rate("deceased_listed"))]
            for prog in ("dibao", "tekun", "orphan"):
                add = keep[keep["program"] == prog].copy()
                if prog == "dibao" and len(add):
                    add = add[add["relation"] != "户主"]  # a dead head is the held-household case; keep members
                if len(add):
                    add["defect"] = "deceased_listed"
                    add["household_size"] = add.get("household_size")
                    if prog == "dibao":
                        # the county still counts the member: add to the household's size
                        sizes = rosters["dibao"].groupby("household_id")["id_number"].count()
                        for hid in add["household_id"]:
                            sel = rosters["dibao"]["household_id"] == hid
                            listed = (add["household_id"] == hid).sum()
                            rosters["dibao"].loc[sel, "household_size"] = sizes.get(hid, 0) + listed
                        add["household_size"] = [int(sizes.get(h, 0) + (add["household_id"] == h).sum())
                                                 for h in add["household_id"]]
                        add = add[add["household_id"].isin(rosters["dibao"]["household_id"])]
                    rosters[prog] = pd.concat([rosters[prog], add])
        if len(self._aged_out):
            keep = self._aged_out.iloc[_pick(rng, np.ones(len(self._aged_out), bool), cfg.rate("orphan_aged_out"))]
            rosters["orphan"] = pd.concat([rosters["orphan"], keep.assign(defect="orphan_aged_out")])
        for prog in list(rosters):
            rosters[prog] = rosters[prog].reset_index(drop=True)
            rosters[prog]["defect"] = rosters[prog]["defect"].fillna("")

        def clean_rows(prog, extra=None):
            m = (rosters[prog]["defect"] == "").to_numpy()
            return m if extra is None else m & extra

        dib = rosters["dibao"]
        head = (dib["relation"] == "户主").to_numpy()
        for prog in rosters:
            df = rosters[prog]
            idx = _pick(rng, clean_rows(prog), cfg.rate("bad_check_digit"))
            if len(idx):
                ids = df["id_number"].to_numpy().copy()
                for i in idx:
                    good = ids[i][-1]
                    ids[i] = ids[i][:-1] + ("0" if good != "0" else "1")
                df["id_number"] = ids
                mark(prog, idx, "bad_check_digit")
            for kind, op in (("sex_mismatch", "sex"), ("malformed_month", "month"), ("bad_account", "acct")):
                base = clean_rows(prog)
                if op == "acct":
                    base = base & df["account"].notna().to_numpy()
                    if prog == "dibao":
                        base = base & (df["relation"] == "户主").to_numpy()
                idx = _pick(rng, base, cfg.rate(kind))
                for i in idx:
                    if op == "sex":
                        df.iat[i, df.columns.get_loc("sex")] = "女" if df["sex"].iat[i] == "男" else "男"
                    elif op == "month":
                        df.iat[i, df.columns.get_loc("enrolled_from")] = "2019年13月"
                    else:
                        df.iat[i, df.columns.get_loc("account")] = "62220" + "O1" + "234"
                if len(idx):
                    mark(prog, idx, kind)
        # mistyped and swapped IDs: near-duplicates of last month's correct ID, check digit recomputed
        for kind in ("id_typo", "id_swap"):
            for prog in ("tekun", "orphan"):
                df = rosters[prog]
                idx = _pick(rng, clean_rows(prog), cfg.rate(kind))
                ids = df["id_number"].to_numpy().copy()
                done = []
                for i in idx:
                    body = list(ids[i][:17])
                    pos = int(rng.integers(14, 16))
                    if kind == "id_typo":
                        body[pos] = str((int(body[pos]) + 1 + int(rng.integers(0, 8))) % 10)
                    else:
                        body[pos], body[pos + 1] = body[pos + 1], body[pos]
                    if body[16] != ids[i][16] and (int(body[16]) % 2) != (int(ids[i][16]) % 2):
                        continue  # keep the sex digit's parity: a typo that flips sex is a different defect
                    b = "".join(body)
                    if b == ids[i][:17]:
                        continue
                    new = b + str(check_digits(np.array([b]))[0])
                    self.truth.append({"month": month, "defect": kind, "program": prog, "id_number": new,
                                       "related_id": ids[i], "file": "", "detail": "near-duplicate of related_id"})
                    ids[i] = new
                    done.append(i)
                df["id_number"] = ids
                # the mistyped person is also delivered correctly by a neighbouring county: a pair to link
                if done:
                    twin = df.iloc[done].copy()
                    twin["id_number"] = [t["related_id"] for t in self.truth[-len(done):]]
                    twin["county"] = [self._other_county(c) for c in twin["county"]]
                    twin["defect"] = kind + "_original"
                    rosters[prog] = pd.concat([df, twin], ignore_index=True)
                    mark(prog, done, kind)
        dib = rosters["dibao"]
        head = (dib["relation"] == "户主").to_numpy()
        # household-level defects on whole households
        for kind in ("household_size_mismatch", "negative_income"):
            # vectorised: a Python function per household, or a scan of the roster per chosen
            # household, made province-sized samples take minutes
            hh_clean = ~(dib["defect"] != "").groupby(dib["household_id"]).transform("any").to_numpy()
            idx = _pick(rng, head & hh_clean, cfg.rate(kind))
            chosen = dib["household_id"].iloc[idx]
            sel = dib["household_id"].isin(chosen).to_numpy()
            if kind == "household_size_mismatch":
                dib.loc[sel, "household_size"] = dib.loc[sel, "household_size"] + 1
            else:
                head_income = dib["household_income"].iloc[idx].astype(float).to_numpy()
                negative = pd.Series(-np.abs(np.where(head_income == 0, 100.0, head_income)), index=chosen.to_numpy())
                dib.loc[sel, "household_income"] = dib.loc[sel, "household_id"].map(negative).to_numpy()
            dib.loc[sel, "defect"] = kind
        # account held by somebody else (heads, dispersed tekun)
        idx = _pick(rng, head & (dib["defect"] == "").to_numpy(), cfg.rate("account_other_holder"))
        for i in idx:
            dib.iat[i, dib.columns.get_loc("holder")] = str(self.pop._names(np.array(["男"]))[0])
        mark("dibao", idx, "account_other_holder")
        # exclusive programs: an elderly dibao member (who would qualify) also delivered on the tekun roster
        elderly = Population.ages(dib, month) >= 60
        idx = _pick(rng, (dib["defect"] == "").to_numpy() & ~head & elderly, cfg.rate("exclusive_programs"))
        if len(idx):
            extra = dib.iloc[idx].copy()
            extra["placement"] = "分散供养"
            extra["care_level"] = "全自理"
            extra["institution_code"] = None
            head_bank = rosters["dibao"].groupby("household_id")["bank"].first()
            extra["bank"] = head_bank.reindex(extra["household_id"]).to_numpy()
            extra["account"] = self.pop._accounts(len(extra))
            extra["defect"] = "exclusive_programs"
            extra["program"] = "tekun"
            rosters["tekun"] = pd.concat([rosters["tekun"], extra], ignore_index=True)
            mark("dibao", idx, "exclusive_programs")
        # duplicates across counties: a tekun person also listed by another county
        tk = rosters["tekun"]
        idx = _pick(rng, (tk["defect"] == "").to_numpy(), cfg.rate("dup_across_counties"))
        if len(idx):
            twin = tk.iloc[idx].copy()
            twin["county"] = [self._other_county(c) for c in twin["county"]]
            twin["defect"] = "dup_across_counties"
            rosters["tekun"] = pd.concat([tk, twin], ignore_index=True)
        if month != cfg.months[0]:
            self._change_guardians(month, rosters["orphan"])
        # duplicates in one file: the same row typed twice
        for prog in ("dibao", "tekun", "disability"):
            df = rosters[prog]
            base = (df["defect"] == "").to_numpy()
            if prog == "dibao":
                base = base & ((df["relation"] != "户主").to_numpy())
            idx = _pick(rng, base, cfg.rate("dup_in_file"))
            if len(idx):
                twin = df.iloc[idx].copy()
                twin["defect"] = "dup_in_file"
                twin["_dup"] = True
                rosters[prog] = pd.concat([df, twin], ignore_index=True)
        for prog, df in rosters.items():
            for _, r in df[df["defect"] != ""].iterrows():
                if r["defect"] in ("id_typo", "id_swap") or r["defect"].endswith("_original"):
                    continue
                if r["defect"] == "dup_in_file" and not r.get("_dup", False):
                    continue
                self.truth.append({"month": month, "defect": r["defect"], "program": prog,
                                   "id_number": r["id_number"], "related_id": "", "file": "",
                                   "detail": str(r.get("household_id") or "")})
        return rosters

    def _change_guardians(self, month: str, orphans: pd.DataFrame) -> None:
        """A dispersed orphan's guardian changes: new guardian, new account in the new guardian's name.
        Legitimate often, diversion sometimes: the pattern (account and holder both changed since last
        month) is a review finding. The change persists in the population."""
        rng = self.side_rng(month, "guardians")
        base = ((orphans["defect"] == "") & orphans["placement"].isin(["社会散居", "事实无人抚养"])
                & orphans["id_number"].isin(self.clean_last_month.get("orphan", set()))).to_numpy()
        idx = _pick(rng, base, self.cfg.rate("guardian_account_changed"))
        p = self.pop.people
        for i in idx:
            pid = orphans["id_number"].iat[i]
            name = str(rng.choice(self.pop.surnames, p=self.pop.surname_weights)) + str(rng.choice(self.pop.given_male))
            account = "62" + f"{int(rng.integers(0, 10**14)):014d}"
            if account in self.pop.used_accounts:
                continue
            self.pop.used_accounts.add(account)
            body = orphans["guardian_id_number"].iat[i][:14] + f"{int(rng.integers(500, 1000)):03d}"
            guardian_id = body + str(check_digits(np.array([body]))[0])
            values = {"guardian_name": name, "guardian_id_number": guardian_id, "account": account, "holder": name}
            for col, v in values.items():
                orphans.iat[i, orphans.columns.get_loc(col)] = v
                p.loc[p["id_number"] == pid, col] = v
            orphans.iat[i, orphans.columns.get_loc("defect")] = "guardian_account_changed"

    def _other_county(self, county: str) -> str:
        options = [c for c in self.pop.counties if c[:4] == county[:4] and c != county]
        return options[0] if options else [c for c in self.pop.counties if c != county][0]

    # --- writing ----------------------------------------------------------------------------
    def to_contract_rows(self, prog: str, df: pd.DataFrame, month: str, rng=None) -> pd.DataFrame:
        """The roster as a county would type it: canonical columns, values with realistic noise (drawn
        from `rng`, by default the main stream)."""
        rng = self.rng if rng is None else rng
        n = len(df)
        holder = df["holder"].where(df["holder"].notna(), df["name"])
        bank = df["bank"].map(lambda b: BANK_TYPED[b][0] if isinstance(b, str) else None)
        account = df["account"]
        if prog == "dibao":
            # the household is paid once, to the head's account: other members leave it blank
            is_head = (df["relation"] == "户主").to_numpy()
            bank = bank.where(is_head, None)
            account = account.where(is_head, None)
        out = pd.DataFrame(
            {
                "region_code": df["county"],
                "name": df["name"],
                "id_number": df["id_number"],
                "sex": df["sex"],
                "urban_rural": df["urban_rural"],
                "bank_name": bank,
                "bank_account": account,
                "account_holder": np.where(account.notna(), holder, None),
                "enrolled_from": df["enrolled_from"],
                "enrolled_to": None,
                "approved_amount": None,
            }
        )
        if prog == "dibao":
            out["household_id"] = df["household_id"]
            out["relation"] = df["relation"]
            out["household_size"] = df["household_size"].astype("Int64").astype(str)
            out["household_income"] = df["household_income"].map(lambda v: f"{v:.2f}")
            out["class_category"] = df["class_category"]
        elif prog == "tekun":
            out["placement"] = df["placement"]
            out["care_level"] = df["care_level"]
            out["institution_code"] = df["institution_code"]
            # extension: working-age tekun persons show their disability certificate
            cert = np.where(df["disability_grade"].notna(),
                            df["id_number"].astype(str) + df["disability_category"].fillna("").astype(str)
                            + df["disability_grade"].fillna("").astype(str), None)
            out["disability_cert_no"] = cert
        elif prog == "orphan":
            out["placement"] = df["placement"]
            out["guardian_name"] = df["guardian_name"]
            out["guardian_id_number"] = df["guardian_id_number"]
        else:
            out["subsidy_type"] = df["subsidy_type"]
            out["disability_cert_no"] = (df["id_number"].astype(str) + df["disability_category"].astype(str)
                                         + df["disability_grade"].astype(str))
            out["disability_category"] = df["disability_category"].map(CATEGORY_NAMES)
            out["disability_grade"] = df["disability_grade"].map(GRADE_NAMES)
        # noise a caseworker types and doudi must normalise (not defects)
        noisy = rng.random(n)
        ids = out["id_number"].astype(str)
        out["id_number"] = np.where(noisy < 0.02, ids.str.lower(), ids)
        out["id_number"] = np.where((noisy >= 0.02) & (noisy < 0.03), " " + ids + " ", out["id_number"])
        fw = str.maketrans("0123456789", "０１２３４５６７８９")
        out["region_code"] = np.where((noisy >= 0.03) & (noisy < 0.04),
                                      out["region_code"].astype(str).str.translate(fw), out["region_code"])
        spell = rng.random(n)
        ef = out["enrolled_from"].astype(str)
        out["enrolled_from"] = np.select(
            [spell < 0.05, spell < 0.10, spell < 0.15],
            [ef.str.replace("-", ""), ef.str[:4] + "年" + ef.str[5:7].str.lstrip("0") + "月",
             ef.str[:4] + "/" + ef.str[5:7].str.lstrip("0") + "/1"],
            ef,
        )
        if prog == "dibao":
            inc = df["household_income"]
            out["household_income"] = np.where((spell > 0.95) & (inc >= 1000),
                                               inc.map(lambda v: f"{v:,.2f}"), out["household_income"])
        return out

    def write_month(self, month: str, rosters: dict[str, pd.DataFrame]) -> None:
        rng = self.rng
        mdir = self.cfg.out / month
        for prog, df in rosters.items():
            # planted watch-list people (at the roster's head) get their noise from a stream of their own:
            # the main stream draws for the population's rows as it did before they existed
            planted = df["_planted"].eq(True).to_numpy() if "_planted" in df else np.zeros(len(df), dtype=bool)
            rows = self.to_contract_rows(prog, df[~planted], month)
            if planted.any():
                own = self.to_contract_rows(prog, df[planted], month, rng=self.side_rng(month, f"watch_rows/{prog}"))
                rows = pd.concat([own, rows])
                df = pd.concat([df[planted], df[~planted]])
            rows = rows.reset_index(drop=True)
            rows["_county"] = df["county"].to_numpy()
            rows["_defect"] = df["defect"].to_numpy()
            pdir = mdir / "rosters" / prog
            pdir.mkdir(parents=True, exist_ok=True)
            for county, part in rows.groupby("_county", sort=True):
                fmt = self._format_for(county, prog)
                english = _stable_hash(county + "en") % 10 == 0
                name = f"{county}_{prog}_{month.replace('-', '')}"
                data = part.drop(columns=["_county", "_defect"])
                data = self._order_columns(data, prog, county, english)
                path = pdir / (name + {"xlsx": ".xlsx", "parquet": ".parquet"}.get(fmt, ".csv"))
                title = f"{county}{month[:4]}年{int(month[5:7])}月{prog}花名册"
                _write_roster(path, data, fmt, title)
                self._attach_file(month, prog, part, path.relative_to(mdir).as_posix())
                r = rng.random()
                if r < self.cfg.rate("duplicate_delivery"):
                    dup = path.with_name(name + "_重复报送" + path.suffix)
                    dup.write_bytes(path.read_bytes())
                    self.truth.append({"month": month, "defect": "duplicate_delivery", "program": prog,
                                       "id_number": "", "related_id": "", "file": dup.relative_to(mdir).as_posix(),
                                       "detail": path.relative_to(mdir).as_posix()})
                elif r < self.cfg.rate("duplicate_delivery") + self.cfg.rate("corrected_file") and len(data) > 2:
                    # the county finds an error and sends a corrected file: last row removed
                    fixed = data.iloc[:-1]
                    withdrawn_id = str(data.iloc[-1][[c for c in data.columns if c in ID_HEADERS][0]])
                    self.withdrawn.add((month, unicodedata.normalize("NFKC", withdrawn_id).strip().upper()))
                    cor = path.with_name(name + "_v2" + path.suffix)
                    _write_roster(cor, fixed, fmt, title + "（更正）")
                    self.truth.append({"month": month, "defect": "corrected_file", "program": prog,
                                       "id_number": "", "related_id": "", "file": path.relative_to(mdir).as_posix(),
                                       "detail": cor.relative_to(mdir).as_posix()})
            # a county with nobody left on the program says so with the roster's header alone: a
            # county that delivers nothing is paid forward from its last file (不断, pipelines/ingest.py)
            now = set(pd.unique(rows["_county"]))
            for county in sorted(self.counties_delivered.get(prog, set()) - now):
                header = self._order_columns(rows.drop(columns=["_county", "_defect"]).iloc[0:0], prog, county,
                                             _stable_hash(county + "en") % 10 == 0)
                name = f"{county}_{prog}_{month.replace('-', '')}.csv"
                _write_roster(pdir / name, header, "csv", "")
            self.counties_delivered[prog] = now

    def _attach_file(self, month: str, prog: str, part: pd.DataFrame, rel: str) -> None:
        ids = set(part.loc[part["_defect"] != "", "id_number"].astype(str).str.strip().str.upper())
        for t in self.truth:
            if t["month"] == month and t["program"] == prog and not t["file"] and t["id_number"] in ids:
                t["file"] = rel

    def _format_for(self, county: str, prog: str) -> str:
        h = (_stable_hash(county + prog) % 1000) / 1000
        acc = 0.0
        for fmt, w in zip(FORMATS, FORMAT_WEIGHTS, strict=True):
            acc += w
            if h < acc:
                return fmt
        return FORMATS[0]

    def _order_columns(self, data: pd.DataFrame, prog: str, county: str, english: bool) -> pd.DataFrame:
        cols = list(data.columns)
        rng = np.random.default_rng(_stable_hash(county + prog))
        if rng.random() < 0.5:
            cols = list(rng.permutation(cols))
        table = {**COMMON_COLUMNS, **PROGRAM_COLUMNS[prog]}
        data = data[cols]
        if english:
            return data
        alias_pick = {c: table[c][int(rng.integers(0, len(table[c])))] for c in cols}
        return data.rename(columns=alias_pick)

    def write_deaths(self, month: str) -> None:
        if not len(self.deaths_last):
            return
        d = self.deaths_last
        death_dates = [f"{m}-{int(self.rng.integers(1, 28)):02d}" for m in d["death_month"]]
        reg = pd.DataFrame({"id_number": d["id_number"], "name": d["name"], "death_date": death_dates,
                            "source": "公安户籍注销"})
        path = self.cfg.out / month / "registry" / "deaths.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        reg.to_csv(path, index=False, encoding="utf-8")

    def write_registries(self, month: str, rosters: dict[str, pd.DataFrame]) -> None:
        """public_payroll.csv, vehicles.csv and businesses.csv: some of the month's dibao and tekun
        people (planted matches) among three times as many people doudi does not pay."""
        rng = self.side_rng(month, "registries")
        rosters = _without_planted(rosters)  # the matches drawn as before planted people existed
        dib = rosters["dibao"]
        # a dibao member is findable only if the whole household is clean (a defect on one member
        # quarantines the household)
        dib_clean = ~(dib["defect"] != "").groupby(dib["household_id"]).transform("any")
        clean = pd.concat([dib.loc[dib_clean, ["id_number", "name"]].assign(program="dibao"),
                           rosters["tekun"].loc[rosters["tekun"]["defect"] == "", ["id_number", "name"]]
                           .assign(program="tekun")])
        # and only if delivered once: a person planted twice (a duplicate) is left out
        clean = clean[~clean["id_number"].isin(
            pd.concat([dib["id_number"], rosters["tekun"]["id_number"]]).loc[lambda x: x.duplicated()])]
        clean = clean.drop_duplicates("id_number")
        for registry, (kind, columns) in REGISTRIES.items():
            idx = _pick(rng, np.ones(len(clean), dtype=bool), self.cfg.rate(kind))
            hits = clean.iloc[idx]
            n_other = 3 * len(hits) + 2
            births = pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 20000, n_other), unit="D")
            body = np.char.add(np.char.add(rng.choice(self.pop.counties, n_other).astype(str),
                                           births.strftime("%Y%m%d").to_numpy().astype(str)),
                               np.char.zfill(rng.integers(500, 1000, n_other).astype(str), 3))
            others = pd.DataFrame({"id_number": np.char.add(body, check_digits(body)),
                                   "name": rng.choice(self.pop.surnames, n_other) + "某"})
            others = others[~others["id_number"].isin(self.pop.used_ids)]
            reg = pd.concat([hits[["id_number", "name"]], others], ignore_index=True)
            n = len(reg)
            evidence = {
                "employer": rng.choice(["市财政局", "区教育局", "县人民医院", "镇人民政府"], n),
                "plate": ["辽" + "ABCDEFGHJKLMNP"[int(i)] + f"{int(v):05d}" for i, v in
                          zip(rng.integers(0, 14, n), rng.integers(0, 100000, n), strict=True)],
                "vehicle_type": rng.choice(["小型轿车", "小型越野客车", "轻型货车"], n),
                "business_name": [f"某某商贸有限公司{int(v)}" for v in rng.integers(1, 999, n)],
                "credit_code": [f"91210{int(v):013d}" for v in rng.integers(0, 10**12, n)],
            }
            for col in columns:
                reg[col] = evidence[col]
            reg = reg.sample(frac=1.0, random_state=int(rng.integers(0, 2**31)))
            path = self.cfg.out / month / "registry" / f"{registry}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            reg.to_csv(path, index=False, encoding="utf-8")
            for _, h in hits.iterrows():
                self.truth.append({"month": month, "defect": kind, "program": h["program"],
                                   "id_number": h["id_number"], "related_id": "", "file": f"registry/{registry}.csv",
                                   "detail": registry})

    def _clean_households(self, dib: pd.DataFrame, min_size: int = 1) -> list[str]:
        """Households delivered clean this month and last (every member), in a stable order."""
        last = self.clean_last_month.get("dibao", set())
        rows = pd.DataFrame({"household_id": dib["household_id"], "head": (dib["relation"] == "户主").to_numpy(),
                             "clean": ((dib["defect"] == "") & dib["id_number"].isin(last)).to_numpy()})
        per = rows.groupby("household_id").agg(clean=("clean", "all"), size=("clean", "size"), heads=("head", "sum"))
        return sorted(per.index[per["clean"] & (per["size"] >= min_size) & (per["heads"] == 1)])

    def plant_watch(self, month: str, rosters: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Watch-list cases the population does not make by itself (its incomes and sizes hold still):
        one dibao household whose income halves, one that loses two members (they set up a household of
        their own). Drawn from a side stream, with the population's structure and the rosters' row
        counts unchanged: every other draw, and so the rest of the sample, stays as it was."""
        rng = self.side_rng(month, "watch")
        dib, p = rosters["dibao"], self.pop.people
        candidates = self._clean_households(dib)
        drop = [h for h in candidates if (dib.loc[dib["household_id"] == h, "household_income"] > 0).all()]
        used: set[str] = set()
        if drop:
            hid = drop[int(rng.integers(0, len(drop)))]
            used.add(hid)
            sel = dib["household_id"] == hid
            new = round(float(dib.loc[sel, "household_income"].iloc[0]) * 0.5, 2)
            dib.loc[sel, "household_income"] = new
            p.loc[p["household_id"] == hid, "household_income"] = new
            self._truth_watch(month, "watch_income_drop", dib.loc[sel & (dib["relation"] == "户主"), "id_number"], hid)
        shrink = [h for h in self._clean_households(dib, 4) if h not in (hid if drop else ())]
        if shrink:
            hid = shrink[int(rng.integers(0, len(shrink)))]
            used |= {hid, f"{hid}F"}
            sel = dib["household_id"] == hid
            leaving = list(dib.loc[sel & (dib["relation"] != "户主"), "id_number"].iloc[-2:])
            # the two set up a household of their own (as many rows as before: no draw moves)
            for k, pid in enumerate(leaving):
                self.watch_moved[pid] = (f"{hid}F", "户主" if k == 0 else "配偶")
                row = dib["id_number"] == pid
                dib.loc[row, "household_id"], dib.loc[row, "relation"] = self.watch_moved[pid]
            for h in (hid, f"{hid}F"):
                dib.loc[dib["household_id"] == h, "household_size"] = int((dib["household_id"] == h).sum())
            self._truth_watch(month, "watch_household_size_change",
                              dib.loc[(dib["household_id"] == hid) & (dib["relation"] == "户主"), "id_number"], hid)
        self._plant_income_cases(month, dib, used)
        return self._plant_watch_people(month, rosters)

    # --- the other watch and visit rules: thresholds from the reference, never from here -----------
    def _reference_rows(self, name: str) -> list[dict]:
        if name not in self._reference_tables:
            path = self.cfg.reference / name
            rows = pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records") if path.exists() else []
            self._reference_tables[name] = rows
        return self._reference_tables[name]

    def policy(self, parameter: str, month: str) -> Decimal:
        """The policy_parameters.csv value in force for the payroll month (the latest effective_from
        among the rows whose period covers it), as the pipeline reads it."""
        rows = [r for r in self._reference_rows("policy_parameters.csv") if r["parameter"].strip() == parameter
                and r["effective_from"].strip() <= month and (r["effective_to"].strip() or "9999-12") >= month]
        if not rows:
            raise ValueError(f"policy_parameters.csv has no {parameter} row in force for {month}: the generator "
                             "plants watch-list cases at that threshold")
        return Decimal(max(rows, key=lambda r: r["effective_from"])["value"].strip())

    def dibao_standard(self, county: str, urban_rural: str, month: str) -> Decimal | None:
        """The dibao standard a county's urban or rural household is paid by in the payroll month, resolved
        as int_standard_resolved does: the longest region prefix, a specific urban/rural over `*`, then
        the latest effective_from; a version counts from its first_payroll."""
        rows = [r for r in self._reference_rows("standards.csv")
                if r["program"] == "dibao" and r["component"] == "standard" and (r["category"] or "*") == "*"
                and county.startswith(r["region_code"]) and (r["urban_rural"] or "*") in ("*", urban_rural)
                and r["effective_from"] <= month and (r["effective_to"] or "9999-12") >= month
                and (r["first_payroll"] or r["effective_from"]) <= month]
        if not rows:
            return None
        best = max(rows, key=lambda r: (len(r["region_code"]), (r["urban_rural"] or "*") != "*", r["effective_from"]))
        return Decimal(best["amount"])

    def _plant_income_cases(self, month: str, dib: pd.DataFrame, used: set[str]) -> None:
        """Two households whose income changes for good (in the population too): one rises to just under
        the standard (near_standard: between watch_near_standard_ratio × standard and the standard, per
        head), one rises above it, so that a household paid last month is paid nothing now (recent_exit:
        it left dibao). Households a planted move split are left alone: their unit changed."""
        rng = self.side_rng(month, "watch_income")
        p, prev = self.pop.people, shift_month(month, -1)
        split = {h for h, _r in self.watch_moved.values()} | {h[:-1] for h, _r in self.watch_moved.values()}
        ratio = self.policy("watch_near_standard_ratio", month)
        cent = Decimal("0.01")

        households = [h for h in self._clean_households(dib) if h not in split]
        heads = dib[dib["relation"] == "户主"].drop_duplicates("household_id").set_index("household_id")

        def pick(eligible_last_month: bool) -> tuple[str, pd.Series, int, Decimal] | None:
            """The first household, in an order drawn at random, that qualifies (a province-sized
            sample has too many to look at all)."""
            for k in rng.permutation(len(households)):
                hid = households[int(k)]
                if hid in used:
                    continue
                head = heads.loc[hid]
                size = int(head["household_size"])
                now = self.dibao_standard(head["county"], head["urban_rural"], month)
                before = self.dibao_standard(head["county"], head["urban_rural"], prev)
                if now is None or before is None:
                    continue
                if eligible_last_month and not Decimal(f"{float(head['household_income']):.2f}") < before * size:
                    continue
                return hid, head, size, now
            return None

        for defect in ("watch_near_standard", "watch_recent_exit"):
            chosen = pick(eligible_last_month=defect == "watch_recent_exit")
            if chosen is None:
                continue
            hid, head, size, standard = chosen
            if defect == "watch_near_standard":  # half-way between the monitoring line and the standard
                per_head = (standard * (1 + ratio) / 2).quantize(cent, rounding=ROUND_DOWN)
            else:  # a tenth above the standard: not eligible, nothing paid
                per_head = (standard * Decimal("1.1")).quantize(cent, rounding=ROUND_UP)
            income = float(per_head * size)
            dib.loc[dib["household_id"] == hid, "household_income"] = income
            p.loc[p["household_id"] == hid, "household_income"] = income
            used.add(hid)
            self._truth_watch(month, defect, pd.Series([head["id_number"]]), hid)

    def _claim_identity(self, rng, sex: str, head) -> tuple[str, str]:
        """An ID number and an account nobody in the sample holds yet, claimed. `head()` gives the ID's
        first 14 characters (county and birth date); the draws are in the order the sample was built
        with (head, sequence, account, each try), so a seed gives the same inbox as before."""
        while True:
            body = head()
            first = self.cfg.shard * self.pop.id_sequences
            seq = int(rng.integers(first, first + self.pop.id_sequences)) * 2 + (1 if sex == "男" else 0)
            body = f"{body}{seq:03d}"
            pid = body + str(check_digits(np.array([body]))[0])
            account = "62" + f"{int(rng.integers(0, 10**14)):014d}"
            if pid not in self.pop.used_ids and account not in self.pop.used_accounts:
                break
        self.pop.used_ids.add(pid)
        self.pop.used_accounts.add(account)
        return pid, account

    def _new_person(self, rng, county: str, birth: str, sex: str) -> dict:
        """A fresh ID (born `birth`, YYYY-MM-DD, in `county`), name and card, drawn from a side stream."""
        pid, account = self._claim_identity(rng, sex, lambda: f"{county}{birth.replace('-', '')}")
        given = self.pop.given_male if sex == "男" else self.pop.given_female
        name = str(rng.choice(self.pop.surnames, p=self.pop.surname_weights)) + str(rng.choice(given))
        return {"id_number": pid, "name": name, "sex": sex, "birth": pd.Timestamp(birth), "county": county,
                "account": account, "bank": str(rng.choice(np.array(BANK_CODES), p=BANK_WEIGHTS))}

    @staticmethod
    def _born(rng, turns: int, in_month: str) -> str:
        """A birth date (YYYY-MM-DD) on which a person turns `turns` in the month `in_month`."""
        return f"{shift_month(in_month, -12 * turns)}-{int(rng.integers(1, 29)):02d}"

    def _plant_watch_people(self, month: str, rosters: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Three people enrolled this month, each a case of the rules birth dates decide:
        - a dispersed orphan (社会散居) who reaches orphan_age_out within the look-ahead:
          orphan_ageing_out and dispersed_orphan;
        - a dispersed tekun person, working-age with a disability certificate, who reaches
          tekun_elderly_min_age within the look-ahead: age_threshold and tekun_dispersed;
        - a one-person dibao household whose head turns watch_dibao_elderly_age this month, severely
          disabled (grade 1, living and nursing subsidy, classified 老年;重残): age_threshold,
          dibao_elderly_alone (when that age is at least visit_elderly_min_age), nursing_subsidy and
          dibao_ill_or_disabled.
        Then every planted person still due goes on the head of this month's rosters."""
        rng = self.side_rng(month, "watch_people")

        def county_of(prog: str) -> str:
            # a county that delivers the program this month with a few rows: no file appears or
            # disappears, and the main stream draws as it did
            sizes = rosters[prog]["county"].value_counts()
            counties = sorted(sizes[sizes >= 3].index) or sorted(sizes.index) or sorted(self.pop.counties)
            return str(counties[int(rng.integers(0, len(counties)))])

        age_out = int(self.policy("orphan_age_out", month))
        orphan_ahead = int(self.policy("watch_orphan_age_out_lookahead_months", month))
        age_ahead = int(self.policy("watch_age_lookahead_months", month))
        tekun_elderly = int(self.policy("tekun_elderly_min_age", month))
        dibao_elderly = int(self.policy("watch_dibao_elderly_age", month))
        alone_age = int(self.policy("visit_elderly_min_age", month))
        yyyymm = month.replace("-", "")
        base = {c: None for c in PERSON_COLUMNS} | {"enrolled_from": month, "alive": True, "living": False,
                                                     "nursing": False, "household_income": np.nan}
        new = []
        # the orphan, and the guardian the money is paid to
        county = county_of("orphan")
        sex = str(rng.choice(["男", "女"]))
        orphan = self._new_person(rng, county, self._born(rng, age_out, shift_month(
            month, int(rng.integers(1, max(orphan_ahead, 1) + 1)))), sex)
        guardian = self._new_person(rng, county, self._born(rng, int(rng.integers(35, 60)), month), "女")
        new.append(base | orphan | {"program": "orphan", "urban_rural": str(rng.choice(["城市", "农村"])),
                                    "placement": "社会散居", "guardian_name": guardian["name"],
                                    "guardian_id_number": guardian["id_number"], "holder": guardian["name"],
                                    "account": guardian["account"], "bank": guardian["bank"],
                                    "_truth": ("watch_orphan_ageing_out", "visit_dispersed_orphan")})
        # the tekun person
        county = county_of("tekun")
        tekun = self._new_person(rng, county, self._born(rng, tekun_elderly, shift_month(
            month, int(rng.integers(0, age_ahead + 1)))), str(rng.choice(["男", "女"])))
        new.append(base | tekun | {"program": "tekun", "urban_rural": "农村", "placement": "分散供养",
                                   "care_level": "全自理", "disability_category": str(rng.choice(list("1234567"))),
                                   "disability_grade": "4",
                                   "_truth": ("watch_age_threshold", "visit_tekun_dispersed")})
        # the elderly dibao member living alone
        county = county_of("dibao")
        urban_rural = str(rng.choice(["城市", "农村"]))
        head = self._new_person(rng, county, self._born(rng, dibao_elderly, month), str(rng.choice(["男", "女"])))
        standard = self.dibao_standard(county, urban_rural, month) or Decimal(0)
        truths = ("watch_age_threshold", "visit_nursing_subsidy", "visit_dibao_ill_or_disabled") + (
            ("visit_dibao_elderly_alone",) if dibao_elderly >= alone_age else ())
        new.append(base | head | {"program": "dibao", "urban_rural": urban_rural, "relation": "户主",
                                  "household_id": f"{county}W{yyyymm}{self.cfg.shard:02d}",
                                  "household_income": float((standard / 4).quantize(Decimal("0.01"))),
                                  "class_category": "老年;重残", "disability_grade": "1",
                                  "disability_category": str(rng.choice(list("1234567"))),
                                  "living": True, "nursing": True, "_truth": truths})
        for person in new:
            for defect in person.pop("_truth"):
                program = "disability" if defect == "visit_nursing_subsidy" else person["program"]
                self.truth.append({"month": month, "defect": defect, "program": program,
                                   "id_number": person["id_number"], "related_id": "", "file": "",
                                   "detail": person.get("household_id") or person["placement"] or ""})
        added = pd.DataFrame(new, columns=PERSON_COLUMNS)
        self.watch_people = pd.concat([self.watch_people, added], ignore_index=True) if len(self.watch_people) \
            else added
        w = self.watch_people
        w["birth"] = pd.to_datetime(w["birth"])
        of_age = np.array([shift_month(b, 12 * age_out) >= month for b in w["birth"].dt.strftime("%Y-%m")])
        due = {"dibao": w[w["program"] == "dibao"].assign(household_size=1),
               "tekun": w[w["program"] == "tekun"],
               "orphan": w[(w["program"] == "orphan") & of_age],
               "disability": pd.concat([w[w["living"].astype(bool)].assign(subsidy_type="生活补贴"),
                                        w[w["nursing"].astype(bool)].assign(subsidy_type="护理补贴")])}
        for prog, rows in due.items():
            if len(rows):
                rosters[prog] = pd.concat([rows.assign(defect="", _planted=True), rosters[prog]], ignore_index=True)
        return rosters

    def _apply_moves(self, dib: pd.DataFrame) -> None:
        """Earlier months' planted moves (watch_moved), applied after plant() so that its draws see the
        population's households; a household carrying a planted defect this month is left as it is."""
        for old in sorted({h[:-1] for h, _r in self.watch_moved.values()}):
            new = f"{old}F"
            ids = [i for i, (h, _r) in self.watch_moved.items() if h == new]
            rows = (dib["household_id"] == old) | dib["id_number"].isin(ids)
            if not rows.any() or (dib.loc[rows, "defect"] != "").any():
                continue
            for pid in ids:
                row = dib["id_number"] == pid
                dib.loc[row, "household_id"], dib.loc[row, "relation"] = self.watch_moved[pid]
            for h in (old, new):
                dib.loc[dib["household_id"] == h, "household_size"] = int((dib["household_id"] == h).sum())

    def _truth_watch(self, month: str, defect: str, heads: pd.Series, detail: str) -> None:
        for head in heads:
            self.truth.append({"month": month, "defect": defect, "program": "dibao", "id_number": head,
                               "related_id": "", "file": "", "detail": detail})

    def write_low_income(self, month: str, rosters: dict[str, pd.DataFrame]) -> None:
        """registry/low_income.csv (contract section 3): two registered people on no program (planted:
        the watch list must list them) among a few registered people the month's dibao roster pays."""
        rng = self.side_rng(month, "low_income")
        dib = _without_planted(rosters)["dibao"]
        assisted = dib.loc[dib["defect"] == "", ["id_number", "name", "county"]].drop_duplicates("id_number")
        assisted = assisted.iloc[_pick(rng, np.ones(len(assisted), dtype=bool), 0.01)]
        planted = []
        while len(planted) < 2:
            county = str(rng.choice(self.pop.counties))
            birth = (pd.Timestamp("1955-01-01") + pd.Timedelta(days=int(rng.integers(0, 15000)))).strftime("%Y%m%d")
            body = f"{county}{birth}{int(rng.integers(500, 1000)):03d}"
            pid = body + str(check_digits(np.array([body]))[0])
            if pid in self.pop.used_ids:  # not added to it: the main stream's draws stay as they were
                continue
            planted.append({"id_number": pid, "name": str(rng.choice(self.pop.surnames)) + "某某", "county": county})
        reg = pd.concat([assisted, pd.DataFrame(planted)], ignore_index=True)
        out = pd.DataFrame({"id_number": reg["id_number"], "name": reg["name"], "region_code": reg["county"],
                            "category": rng.choice(["低收入人口", "建档立卡"], len(reg)),
                            "registered_month": month})
        path = self.cfg.out / month / "registry" / "low_income.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(path, index=False, encoding="utf-8")
        for r in planted:
            self.truth.append({"month": month, "defect": "watch_low_income_unassisted", "program": "",
                               "id_number": r["id_number"], "related_id": "", "file": "registry/low_income.csv",
                               "detail": "low_income"})
    # --- temporary assistance (临时救助) ----------------------------------------------------------
    def _temporary_policy(self, county: str, event: str, month: str) -> dict | None:
        """The temporary_assistance.csv row a case of this county and event is judged by (the longest
        region prefix, then the latest valid_from in force): the generator plants against the data."""
        if not hasattr(self, "_temporary_rows"):
            path = self.cfg.reference / "temporary_assistance.csv"
            self._temporary_rows = pd.read_csv(path, dtype=str).to_dict("records") if path.exists() else []
        rows = [r for r in self._temporary_rows if county.startswith(r["region_code"]) and r["event_type"] == event
                and r["valid_from"] <= month]
        return max(rows, key=lambda r: (len(r["region_code"]), r["valid_from"])) if rows else None

    def _temporary_person(self, rng, birth_code: str, month: str) -> dict:
        sex = str(rng.choice(["男", "女"]))

        def head() -> str:  # an adult's birth date, drawn anew on each try
            birth = pd.Timestamp(f"{month}-01") - pd.Timedelta(days=int(rng.integers(18 * 365, 70 * 365)))
            return f"{birth_code}{birth:%Y%m%d}"

        pid, account = self._claim_identity(rng, sex, head)
        name = str(rng.choice(self.pop.surnames, p=self.pop.surname_weights)) + str(
            rng.choice(self.pop.given_male if sex == "男" else self.pop.given_female))
        bank = str(rng.choice(np.array(BANK_CODES), p=BANK_WEIGHTS))
        return {"id_number": pid, "name": name, "sex": sex, "bank": bank, "account": account,
                "urban_rural": str(rng.choice(["城市", "农村"]))}

    def write_temporary(self, month: str) -> None:
        """Approved temporary-assistance cases of a few counties under rosters/temporary/ (contract
        section 2), with planted defects recorded in the ground truth. Drawn from a generator of its
        own, so every other file of the month is as it was before the program."""
        if not (self.cfg.reference / "temporary_assistance.csv").exists():
            return
        rng = self.side_rng(month, "temporary")
        counties = sorted(rng.choice(self.pop.counties, max(1, int(len(self.pop.counties) * TEMPORARY_COUNTY_SHARE)),
                                     replace=False))
        n = max(len(counties) * 2, int(self.cfg.persons * TEMPORARY_CASES_PER_100 / 100))
        yyyymm = month.replace("-", "")
        last_day = (pd.Timestamp(f"{month}-01") + pd.offsets.MonthEnd(0)).day
        cases: list[dict] = []

        def add(person: dict, county: str, event: str, amount: str, level: str = "乡镇", case_no: str = "",
                household: str = "", day: int | None = None, approval: str | None = None, defect: str = "") -> dict:
            k = len(cases) + 1
            c = {"county": county, **person, "event_type": event, "household_id": household,
                 "event_date": f"{month}-{day or int(rng.integers(1, last_day + 1)):02d}",
                 # slashes: no run of digits long enough to pass for an ID or account number
                 "approval_no": f"LS{county}/{yyyymm}/{self.cfg.shard:02d}{k:04d}" if approval is None else approval,
                 "approval_level": level, "case_by_case_no": case_no, "approved_amount": amount, "defect": defect}
            cases.append(c)
            return c

        events = [e for e in ("疫情确诊", "隔离收治", "病亡", "失业滞留", "因病", "因灾", "其他")]
        for i in range(n):
            county = str(counties[i % len(counties)])
            event = str(rng.choice(events))
            policy = self._temporary_policy(county, event, month)
            if policy is None:
                continue
            person = self._temporary_person(rng, county, month)
            household = f"{county}T{self.cfg.shard:02d}{int(rng.integers(0, 10**6)):06d}" if rng.random() < 0.5 else ""
            if rng.random() < 0.1:  # a larger case decided 一事一议 by the county
                amount = int(policy["county_cap"]) + 50 * int(rng.integers(1, 20))
                add(person, county, event, f"{amount}.00", level="县级", case_no=f"YSYY{county}/{yyyymm}/{i:03d}",
                    household=household)
            else:
                level = "县级" if rng.random() < 0.2 else "乡镇"
                top = min(int(policy["township_cap" if level == "乡镇" else "county_cap"]),
                          int(policy["case_by_case_threshold"]))
                add(person, county, event, f"{50 * int(rng.integers(4, top // 50 + 1))}.00", level=level,
                    household=household)
        def pick(kind: str) -> list[int]:
            """A share of the cases no defect was planted on yet (at least one)."""
            clean = np.array([not c["defect"] for c in cases], dtype=bool)
            return [int(i) for i in _pick(rng, clean, self.cfg.rate(kind))]

        def truth(c: dict, kind: str) -> None:
            c["defect"] = kind
            self.truth.append({"month": month, "defect": kind, "program": "temporary", "id_number": c["id_number"],
                               "related_id": "", "file": "", "detail": c["approval_no"]})

        for i in pick("temporary_above_cap"):
            c = cases[i]
            c["case_by_case_no"] = ""
            policy = self._temporary_policy(c["county"], c["event_type"], month)
            c.update(approval_level="乡镇", approved_amount=f"{int(policy['township_cap']) + 500}.00")
            truth(c, "temporary_above_cap")
        for i in pick("temporary_repeat"):
            c = cases[i]
            # as many more cases of the household for the event as the policy allows, the last one too many
            policy = self._temporary_policy(c["county"], c["event_type"], month)
            household = c["household_id"] or ""
            first_day = min(int(c["event_date"][-2:]), last_day - int(policy["max_per_12_months"]))
            c["event_date"] = f"{month}-{first_day:02d}"
            person = {k: c[k] for k in ("id_number", "name", "sex", "bank", "account", "urban_rural")}
            c["defect"] = "temporary_repeat_allowed"  # the cases the window allows: no defect, left alone
            for extra in range(1, int(policy["max_per_12_months"]) + 1):
                again = add(person, c["county"], c["event_type"], c["approved_amount"], level=c["approval_level"],
                            case_no=c["case_by_case_no"], household=household, day=first_day + extra,
                            defect="temporary_repeat_allowed")
            truth(again, "temporary_repeat")
        if len(self.deaths_last):
            for i in pick("temporary_deceased"):
                c = cases[i]
                dead = self.deaths_last.iloc[int(rng.integers(0, len(self.deaths_last)))]
                c.update(id_number=dead["id_number"], name=dead["name"], sex=dead["sex"], bank=dead["bank"],
                         account=dead["account"], urban_rural=dead["urban_rural"], household_id="")
                truth(c, "temporary_deceased")
        for kind, change in (("temporary_bad_event", {"event_type": "失火"}),
                             ("temporary_no_approval", {"approval_no": ""})):
            for i in pick(kind):
                cases[i].update(change)
                truth(cases[i], kind)
        for i in pick("temporary_migrant"):
            cases[i].update(self._temporary_person(rng, str(rng.choice(OTHER_PROVINCE_CODES)), month), household_id="")
            truth(cases[i], "temporary_migrant")
        table = {**COMMON_COLUMNS, **PROGRAM_COLUMNS["temporary"], **EXTRA_ALIASES["temporary"]}
        columns = ["region_code", "name", "id_number", "sex", "urban_rural", "bank_name", "bank_account",
                   "account_holder", "household_id", "event_type", "event_date", "approval_no", "approval_level",
                   "case_by_case_no", "approved_amount"]
        pdir = self.cfg.out / month / "rosters" / "temporary"
        for county in sorted({c["county"] for c in cases}):
            rows = [c for c in cases if c["county"] == county]
            data = pd.DataFrame({"region_code": [c["county"] for c in rows], "name": [c["name"] for c in rows],
                                 "id_number": [c["id_number"] for c in rows], "sex": [c["sex"] for c in rows],
                                 "urban_rural": [c["urban_rural"] for c in rows],
                                 "bank_name": [BANK_TYPED[c["bank"]][0] for c in rows],
                                 "bank_account": [c["account"] for c in rows],
                                 "account_holder": [c["name"] for c in rows],
                                 **{k: [c[k] or None for c in rows] for k in columns[8:]}})
            if _stable_hash(county + "en") % 10:
                data = data.rename(columns={c: (table[c][-1] if c == "approved_amount" else table[c][0])
                                            for c in columns})
            fmt = self._format_for(county, "temporary")
            pdir.mkdir(parents=True, exist_ok=True)
            path = pdir / (f"{county}_temporary_{yyyymm}" + {"xlsx": ".xlsx", "parquet": ".parquet"}.get(fmt, ".csv"))
            _write_roster(path, data, fmt, f"{county}{month[:4]}年{int(month[5:7])}月临时救助审批花名册")
            rel = path.relative_to(self.cfg.out / month).as_posix()
            for t in self.truth:
                if t["month"] == month and t["program"] == "temporary" and not t["file"] and \
                        any(c["id_number"] == t["id_number"] and c["approval_no"] == t["detail"] for c in rows):
                    t["file"] = rel

    def run(self) -> dict:
        months = self.cfg.months
        for i, month in enumerate(months):
            if i == 0:
                self.seed_population(month)
            else:
                self.evolve(month)
            rosters = self.rosters(month)
            rosters = self.plant(month, rosters)
            if i > 0:
                self._apply_moves(rosters["dibao"])
                rosters = self.plant_watch(month, rosters)
            self.write_month(month, rosters)
            self.write_deaths(month)
            self.write_registries(month, rosters)
            self.write_low_income(month, rosters)
            self.write_temporary(month)
            self.clean_last_month = {
                p: set(df.loc[df["defect"] == "", "id_number"]) - {i for m, i in self.withdrawn if m == month}
                for p, df in rosters.items()}
        # a planted row that a corrected file then withdrew never reached doudi: nothing to find
        self.truth = [t for t in self.truth
                      if t["defect"] in FILE_DEFECTS or (t["month"], t["id_number"]) not in self.withdrawn]
        truth = pd.DataFrame(self.truth, columns=["month", "defect", "program", "id_number", "related_id",
                                                  "file", "detail"])
        truth["expected"] = truth["defect"].map(lambda d: "/".join(EXPECTED_OUTCOME.get(d, ("", ""))))
        truth.to_csv(self.cfg.out / "ground_truth.csv", index=False, encoding="utf-8")
        (self.cfg.out / "generator.json").write_text(json.dumps({
            "months": months, "persons": self.cfg.persons, "seed": self.cfg.seed,
            "defect_rates": {k: self.cfg.rate(k) for k in self.cfg.defect_rates},
        }, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        rows = sum(1 for _ in self.cfg.out.glob("*/rosters/*/*"))
        return {"out": str(self.cfg.out), "months": months, "files": rows, "defects": len(truth)}


def _without_planted(rosters: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The rosters without the people a planted watch or visit case brought in."""
    return {p: df[~df["_planted"].eq(True)] if "_planted" in df else df for p, df in rosters.items()}


def _write_roster(path: Path, data: pd.DataFrame, fmt: str, title: str) -> None:
    data = data.astype(object).where(data.notna(), None)
    if fmt.startswith("csv"):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(list(data.columns))
        w.writerows(["" if v is None else str(v) for v in row] for row in data.itertuples(index=False))
        text = buf.getvalue()
        if fmt == "csv_gbk":
            path.write_bytes(text.encode("gb18030"))
        elif fmt == "csv_utf8_bom":
            path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        else:
            path.write_bytes(text.encode("utf-8"))
    elif fmt == "xlsx":
        import xlsxwriter

        wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False})
        wb.set_properties({"created": pd.Timestamp("2020-01-01").to_pydatetime()})
        ws = wb.add_worksheet("花名册")
        ws.merge_range(0, 0, 0, max(1, len(data.columns) - 1), title)
        ws.write_row(1, 0, list(data.columns))
        for r, row in enumerate(data.itertuples(index=False), start=2):
            ws.write_row(r, 0, ["" if v is None else str(v) for v in row])
        wb.close()
    else:
        data.astype("string").to_parquet(path, index=False)


def generate(out: Path, months: str | list[str], persons: int = 2000, seed: int = 20200101,
             defect_scale: float = 1.0, reference: Path = DEFAULT_REFERENCE, shard: int = 0,
             shards: int = 1) -> dict:
    month_list = month_range(months) if isinstance(months, str) else list(months)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = GeneratorConfig(out=out, months=month_list, persons=persons, seed=seed,
                          defect_scale=defect_scale, reference=Path(reference), shard=shard, shards=shards)
    result = Generator(cfg).run()
    result["span"] = months_between(month_list[0], month_list[-1])
    return result
