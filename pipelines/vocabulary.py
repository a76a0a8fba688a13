"""The enumerated vocabulary of doudi, defined once: dispositions, reason codes, finding types,
line types, and the header aliases of contract section 2.

Reason codes are what a caseworker reads in the quarantine workbook, so each carries a Chinese
message that says what is wrong and what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

DISPOSITIONS = ("accepted", "quarantined", "duplicate")
LINE_TYPES = ("regular", "price_subsidy", "arrears", "reissue", "one_off")
LINE_STATUSES = ("payable", "held")
# Ledger programs: the two disability subsidies are separate lines of one person and month, so the
# ledger names them separately; the roster program stays "disability" (contract section 2).
LEDGER_PROGRAMS = ("dibao", "tekun", "orphan", "disability_living", "disability_nursing", "temporary")
PROGRAM_NAMES_ZH = {
    "dibao": "最低生活保障金",
    "tekun": "特困人员供养金",
    "orphan": "孤儿基本生活费",
    "disability": "残疾人两项补贴",
    "disability_living": "困难残疾人生活补贴",
    "disability_nursing": "重度残疾人护理补贴",
    "price_subsidy": "价格临时补贴",
    "temporary": "临时救助金",
}
# the short names caseworkers use on lists (a watch or visit list's 项目 column)
PROGRAM_SHORT_ZH = {"dibao": "低保", "tekun": "特困供养", "orphan": "孤儿", "disability": "残疾人两项补贴",
                    "disability_living": "残疾人生活补贴", "disability_nursing": "重度残疾人护理补贴",
                    "price_subsidy": "价格临时补贴", "temporary": "临时救助"}
LINE_TYPE_ZH = {"regular": "当月", "price_subsidy": "价格临时补贴", "arrears": "补发", "reissue": "重发",
                "one_off": "一次性"}
# why a line is owed (payment_ledger.arrears_cause), as `doudi explain` says it
ARREARS_CAUSE_ZH = {"regular": "本月应发", "price_subsidy": "价格临时补贴联动", "raise_back_pay": "提标补发",
                    "late_enrolment": "延迟纳入补发", "held_released": "暂停核销后补发",
                    "supplementary_correction": "已发放月份更正补发"}
# Back pay (money for an earlier month paid now): arrears by their cause, a held price subsidy
# released, and a bank-returned payment sent again. The analyst database's back_pay_cause.
BACK_PAY_CAUSE_ZH = {**{c: ARREARS_CAUSE_ZH[c] for c in ("raise_back_pay", "late_enrolment", "held_released",
                                                         "supplementary_correction")},
                     "reissue": "银行退回失败后重发"}
LINE_STATUS_ZH = {"payable": "应付", "held": "暂停发放"}
PAYMENT_STATE_ZH = {"sent": "已发送银行", "paid": "银行回报成功", "failed": "银行退回失败"}
DISPOSITION_ZH = {"accepted": "采用", "quarantined": "退回待更正", "duplicate": "重复报送"}


@dataclass(frozen=True)
class Reason:
    code: str
    message_zh: str
    message_en: str


_REASONS = [
    # file level
    Reason("FILE_UNREADABLE", "文件无法读取（格式损坏或编码无法识别），请重新导出", "file cannot be read"),
    Reason("FILE_EMPTY", "文件没有数据行", "file has no data rows"),
    Reason("FILE_HEADER_UNKNOWN", "找不到表头行（前10行中没有可识别的列名）", "no recognisable header row"),
    Reason("FILE_COLUMN_MISSING", "缺少必需的列", "a required column is missing"),
    Reason("FILE_COLUMN_DUPLICATE", "同一列出现两次", "a column appears twice"),
    Reason("FILE_TOO_LARGE", "文件或字段超过允许的大小", "file or field too large"),
    Reason("FILE_NOT_DELIVERED", "上月已报送的县区本月未报送或被整体退回，且不能按以往名册临时发放",
           "file not delivered and not carried forward"),
    Reason("FILE_ROW_SWING", "行数与上月同县相比变化过大，请核实是否漏报或重复", "row count swings vs last month"),
    Reason("FILE_NAME_INVALID", "文件名含有路径或非法字符", "file name has path components"),
    Reason("FILE_NOT_REGULAR", "收件箱中的符号链接或特殊文件（管道、设备），未读取；请把文件本身放入收件箱",
           "a symbolic link or special file in the inbox, not read"),
    Reason("FILE_MONTH_MISMATCH", "文件名中的月份与所在月份文件夹不符，整个文件未采用；请放入正确月份的文件夹或更正文件名",
           "the month in the file name is not its folder's month"),
    Reason("FILE_COLUMN_HIDDEN", "表格中名册的列被隐藏，审核时看不到，整个文件未采用；请取消隐藏后重新报送",
           "a roster column is hidden in the spreadsheet"),
    Reason("FILE_REJECTED", "所在文件被整体退回，见文件退回原因", "the whole file was rejected"),
    Reason("FILE_SUPERSEDED", "该县本月已报送更正文件，此行不在更正文件中", "file superseded by a correction"),
    Reason("ROW_MALFORMED", "该行列数与表头不符（可能被截断或多了逗号）", "row has the wrong number of fields"),
    Reason("ROW_HIDDEN", "该行在表格中被隐藏，审核时看不到，不予发放；如应发放请取消隐藏后重新报送",
           "a hidden spreadsheet row"),
    Reason("SHEET_HIDDEN", "该行在隐藏的工作表中，审核时看不到，不予发放；名册应放在第一个可见工作表",
           "a row of a hidden worksheet"),
    # row level: identity
    Reason("NAME_MISSING", "姓名为空", "name missing"),
    Reason("NAME_INVALID", "姓名或户名以 = + - @ 开头或含控制字符，不是有效姓名（可能是公式注入），请核对", "name looks like a formula"),
    Reason("NAME_HIDDEN_CHARACTER", "姓名或户名中有换行、制表符、控制字符或零宽字符等看不见的字符，银行无法核对户名；"
           "请删除后重新报送", "name or holder has line breaks, control or zero-width characters"),
    Reason("ID_MISSING", "身份证号为空", "ID number missing"),
    Reason("ID_FORMAT", "身份证号应为18位（17位数字加校验位），15位旧号码请换领后报送", "ID not 18 chars"),
    Reason("ID_CHECK_DIGIT", "身份证号校验位错误，请核对号码", "ID check digit wrong"),
    Reason("ID_BIRTH_DATE", "身份证号中的出生日期无效或晚于发放月", "ID birth date invalid or future"),
    Reason("SEX_MISMATCH", "性别与身份证号第17位不符（奇数为男，偶数为女）", "sex disagrees with ID"),
    Reason("SEX_INVALID", "性别应为男或女", "sex not 男/女"),
    Reason("REGION_UNKNOWN", "行政区划代码不是本省现行县级代码", "region code not a current county"),
    Reason("URBAN_RURAL_INVALID", "城乡类别应为城市或农村", "urban_rural not 城市/农村"),
    # row level: money and accounts
    Reason("BANK_ACCOUNT_INVALID", "银行账号应为12至30位数字", "bank account not 12-30 digits"),
    Reason("BANK_UNKNOWN", "开户银行不在银行代码表中，请填写银行全称", "bank not in bank table"),
    Reason("ACCOUNT_HOLDER_MISSING", "账户名为空", "account holder missing"),
    Reason("AMOUNT_INVALID", "核定金额无法识别或为负数", "approved amount invalid"),
    # row level: months
    Reason("MONTH_INVALID", "年月无法识别，请填写如2020-03", "month unreadable"),
    Reason("ENROLMENT_FUTURE", "纳入年月晚于发放月", "enrolled_from after payroll month"),
    Reason("ENROLMENT_ORDER", "终止年月早于纳入年月", "enrolled_to before enrolled_from"),
    # dibao household
    Reason("RELATION_INVALID", "与户主关系应为户主/配偶/子女/父母/其他", "relation invalid"),
    Reason("HOUSEHOLD_ID_MISSING", "家庭编号为空", "household_id missing"),
    Reason("HOUSEHOLD_NO_HEAD", "该户没有户主", "household has no head"),
    Reason("HOUSEHOLD_MULTI_HEAD", "该户有多名户主", "household has several heads"),
    Reason("HOUSEHOLD_SIZE_MISMATCH", "保障人口数与本户报送人数不符", "household_size != member rows"),
    Reason("HOUSEHOLD_SIZE_INVALID", "保障人口数无法识别", "household_size unreadable"),
    Reason("HOUSEHOLD_INCOME_INVALID", "家庭月总收入无法识别或为负数", "household income invalid"),
    Reason("HOUSEHOLD_ACCOUNT_MISSING", "户主行缺少收款账户", "payee account missing on head row"),
    Reason("HOUSEHOLD_MEMBER_INVALID", "同户其他成员有错误，整户暂不发放", "another member of the household has an error"),
    Reason("CLASS_CATEGORY_INVALID", "分类施保类别应为老年/重残/重病/未成年", "class_category invalid"),
    # tekun
    Reason("PLACEMENT_INVALID", "供养/养育方式不在规定取值内", "placement invalid"),
    Reason("CARE_LEVEL_INVALID", "生活自理能力应为全自理/半护理/全护理", "care_level invalid"),
    Reason("INSTITUTION_MISSING", "集中供养须填写供养机构代码", "institution code missing"),
    Reason("TEKUN_NOT_ELIGIBLE", "年龄不符合特困供养条件且不在残疾人名册中", "tekun not eligible by age or disability"),
    # orphan
    Reason("ORPHAN_AGED_OUT", "已满18周岁（生日所在月之后不再发放）", "18th birthday before payroll month"),
    Reason("GUARDIAN_MISSING", "散居孤儿须填写监护人姓名和身份证号", "guardian missing"),
    Reason("GUARDIAN_ID_INVALID", "监护人身份证号无效", "guardian ID invalid"),
    # disability
    Reason("SUBSIDY_TYPE_INVALID", "补贴类型应为生活补贴或护理补贴", "subsidy_type invalid"),
    Reason("DISABILITY_CATEGORY_INVALID", "残疾类别不在规定取值内", "disability category invalid"),
    Reason("DISABILITY_GRADE_INVALID", "残疾等级应为一级至四级", "disability grade invalid"),
    Reason("DISABILITY_CERT_MISMATCH", "残疾人证号应为本人身份证号加类别和等级", "certificate != ID + category + grade"),
    Reason("NO_STANDARD", "找不到适用的保障标准", "no standards version applies"),
    # temporary assistance (临时救助)
    Reason("EVENT_TYPE_INVALID", "救助事由应为疫情确诊/隔离收治/病亡/失业滞留/因病/因灾/其他", "event_type invalid"),
    Reason("EVENT_DATE_INVALID", "事由发生日期为空或无法识别，请填写如2020-03-05", "event_date missing or unreadable"),
    Reason("EVENT_DATE_FUTURE", "事由发生日期晚于审批所在月份", "event_date after the approval month"),
    Reason("APPROVAL_NO_MISSING", "审批编号为空（每个救助案件须有唯一的审批编号）", "approval_no missing"),
    Reason("APPROVAL_LEVEL_INVALID", "审批层级应为乡镇或县级", "approval_level not 乡镇/县级"),
    Reason("TEMPORARY_AMOUNT_INVALID", "救助金额为空、无法识别或不大于0", "approved amount missing or not above 0"),
]
REASONS = {r.code: r for r in _REASONS}

# The caseworkers' validation page (issue 21, pipelines/caseworker_page.py): for each reason, the
# roster columns a caseworker looks at (shown by their Chinese headers, with the delivered values),
# and what to do where the message alone does not say it. Kept here, beside the messages.
REASON_COLUMNS = {
    "ROW_MALFORMED": (), "ROW_HIDDEN": (), "SHEET_HIDDEN": (),
    "NAME_MISSING": ("name",), "NAME_INVALID": ("name", "account_holder"),
    "NAME_HIDDEN_CHARACTER": ("name", "account_holder"),
    "ID_MISSING": ("id_number",), "ID_FORMAT": ("id_number",), "ID_CHECK_DIGIT": ("id_number",),
    "ID_BIRTH_DATE": ("id_number",), "SEX_MISMATCH": ("sex", "id_number"), "SEX_INVALID": ("sex",),
    "REGION_UNKNOWN": ("region_code",), "URBAN_RURAL_INVALID": ("urban_rural",),
    "BANK_ACCOUNT_INVALID": ("bank_account",), "BANK_UNKNOWN": ("bank_name",),
    "ACCOUNT_HOLDER_MISSING": ("account_holder",), "AMOUNT_INVALID": ("approved_amount",),
    "MONTH_INVALID": ("enrolled_from", "enrolled_to"), "ENROLMENT_FUTURE": ("enrolled_from",),
    "ENROLMENT_ORDER": ("enrolled_from", "enrolled_to"),
    "RELATION_INVALID": ("relation",), "HOUSEHOLD_ID_MISSING": ("household_id",),
    "HOUSEHOLD_NO_HEAD": ("household_id", "relation"), "HOUSEHOLD_MULTI_HEAD": ("household_id", "relation"),
    "HOUSEHOLD_SIZE_MISMATCH": ("household_id", "household_size"), "HOUSEHOLD_SIZE_INVALID": ("household_size",),
    "HOUSEHOLD_INCOME_INVALID": ("household_income",),
    "HOUSEHOLD_ACCOUNT_MISSING": ("household_id", "bank_account"), "HOUSEHOLD_MEMBER_INVALID": ("household_id",),
    "CLASS_CATEGORY_INVALID": ("class_category",),
    "PLACEMENT_INVALID": ("placement",), "CARE_LEVEL_INVALID": ("care_level",),
    "INSTITUTION_MISSING": ("placement", "institution_code"), "TEKUN_NOT_ELIGIBLE": ("id_number", "disability_cert_no"),
    "ORPHAN_AGED_OUT": ("id_number",), "GUARDIAN_MISSING": ("guardian_name", "guardian_id_number"),
    "GUARDIAN_ID_INVALID": ("guardian_id_number",),
    "SUBSIDY_TYPE_INVALID": ("subsidy_type",), "DISABILITY_CATEGORY_INVALID": ("disability_category",),
    "DISABILITY_GRADE_INVALID": ("disability_grade",), "DISABILITY_CERT_MISMATCH": ("disability_cert_no",),
    "EVENT_TYPE_INVALID": ("event_type",), "EVENT_DATE_INVALID": ("event_date",), "EVENT_DATE_FUTURE": ("event_date",),
    "APPROVAL_NO_MISSING": ("approval_no",), "APPROVAL_LEVEL_INVALID": ("approval_level",),
    "TEMPORARY_AMOUNT_INVALID": ("approved_amount",),
}
# Columns whose values a page never shows, even masked: the row's masked ID number identifies it.
UNSHOWN_COLUMNS = frozenset({"id_number", "guardian_id_number", "bank_account", "disability_cert_no"})
# Columns holding names: shown as mask_name shows them (the first character, enough to see a stray `=`).
NAME_COLUMNS = frozenset({"name", "account_holder", "guardian_name"})
REASON_ACTIONS = {
    "ROW_MALFORMED": "在原表中找到该行，补齐或删去多余的分隔符，使列数与表头一致后重新报送",
    "ROW_HIDDEN": "如应发放，取消隐藏该行后重新报送；如不应发放，删除该行",
    "SHEET_HIDDEN": "把名册放在第一个可见的工作表中重新报送",
    "HOUSEHOLD_MEMBER_INVALID": "先更正同户其他成员的错误（见本页其他规则），整户随后一并发放",
    "FILE_SUPERSEDED": "如此人仍应发放，把该行补入更正文件后重新报送",
    "FILE_REJECTED": "按文件退回原因更正整个文件后重新报送",
    "TEKUN_NOT_ELIGIBLE": "核实年龄；如因残疾纳入特困供养，请确认本人在残疾人名册中并填写残疾人证号",
    "ORPHAN_AGED_OUT": "核实出生日期；已满18周岁的请从孤儿名册中移出",
}
DEFAULT_REASON_ACTION = "按上述要求核对并更正原表中的该项，随本县名册重新报送"


# Finding types: what integrity checks and the engine report. action says what doudi did.
FINDING_TYPES = {
    "file_rejected": "文件被整体退回",
    "county_file_carried_forward": "县区名册未报送或被退回，按以往名册临时发放（待补报后多退少补）",
    "county_file_not_delivered": "县区名册未报送或被退回，且不能按以往名册临时发放，本月未发放",
    "county_reference_held": "县区参考数据（标准、资金分担等）有误，该县按最近一次发放金额临时发放（待更正后多退少补）",
    "county_reference_held_unpaid": "县区参考数据有误，且本人没有可沿用的发放记录，本月暂不发放（更正后补发）",
    "file_duplicate_delivery": "同一文件重复报送",
    "file_superseded": "更正文件替代原文件",
    "county_files_read_together": "同一县区报送多个互不为更正版本的名册文件，已合并读取",
    "duplicate_across_counties": "同一人被多个县重复报送",
    "exclusive_programs": "同时享受互斥的救助项目",
    "deceased_listed": "已死亡人员仍在名册",
    "household_head_deceased": "户主已死亡，整户暂停待核",
    "guardian_deceased": "孤儿监护人已死亡，暂停待定新监护人",
    "living_subsidy_not_in_dibao": "困难残疾人生活补贴对象不在低保家庭",
    "household_in_two_counties": "同一家庭编号由多个县区报送",
    "account_holder_mismatch": "收款账户户名与应收款人不符",
    "account_conflict_in_file": "同一文件中同一人出现两次且银行账号不同，暂停待核",
    "account_shared": "同一账户收取多个无关家庭的款项",
    "id_name_conflict": "同一身份证号在不同名册中姓名不同",
    "near_duplicate": "疑似同一人使用两个身份证号（记录链接）",
    "registry_public_payroll": "财政供养人员名单中有此人（待核）",
    "registry_vehicle": "名下有机动车（待核）",
    "registry_business": "登记有工商企业或个体户（待核）",
    "account_changed_with_holder": "收款账户与户名同时变更（待核）",
    "hold_cleared": "暂停发放已核销，照发并补发",
    "awaiting_account_correction": "银行退回的款项等待账户更正后重发",
    "reissue_overdue": "银行退回的款项超期未重发（上报）",
    "return_unknown_ref": "银行回盘中的支付参考号不是本系统发出的",
    "return_invalid_status": "银行回盘状态无法识别",
    "return_ref_not_released": "银行回盘的支付流水号属于尚未发出的批次（未采用）",
    "return_contradictory": "银行对同一笔款项既回报成功又回报失败（待核实）",
    "return_file_duplicate": "同一回盘文件换名重复报送（未重复加载）",
    "return_file_withdrawn": "回盘文件已撤回，不再影响付款状态",
    "returned_not_reissued": "银行退回失败、尚未重发",
    "return_contradicts_reissue": "已重发的款项又被银行回报为成功（可能重复到账）",
    "sent_not_owed": "代发记录没有对应的应付台账行",
    "owed_not_sent": "应付台账行没有代发记录",
    "return_amount_differs": "银行回盘金额与代发金额不一致",
    "return_account_differs": "银行回盘账号与代发账号不一致",
    "overpaid_after_release": "已发放月份更正后应发减少（多发，不自动追回）",
    "supplementary_review": "已发放月份更正后应发增加，但无法自动补发，待人工核定",
    "paid_by_later_payroll": "已发放月份更正后应发的月份已由以后月份补发，不再补发，差额待人工核定",
    "dibao_not_eligible": "家庭人均收入不低于低保标准，不予发放",
    "approved_amount_differs": "核定金额与计算金额不一致",
    "no_standard": "找不到适用的保障标准",
    "standards_policy_violation": "保障标准违反政策规定",
    "arrears_negative": "新标准低于已发金额，不追回，待核",
    "arrears_top_up_review": "该月已补发过一次，新标准差额暂停待人工核定",
    "death_date_invalid": "死亡登记的死亡日期无效或晚于报送月份（未据此停发）",
    "registry_withdrawn": "登记信息已作为错误撤回，暂停或停发的款项补发",
    "receivable_recognised": "死亡等信息晚到，已发款项列为应追缴",
    "account_closed": "银行回报账户已销户或不存在，待更换账户后发放",
    "no_payee_account": "应发款项没有可用的收款账户，暂停待补录账户",
    "nothing_due": "按标准本月应发金额为 0",
    "not_entitled_this_month": "本月不在名册载明的享受期内（未开始、已终止或已满龄）",
    # temporary assistance (临时救助)
    "temporary_above_cap": "临时救助金额超过审批层级限额且无一事一议编号，暂停待核",
    "temporary_case_by_case_missing": "临时救助金额超过一事一议标准但无一事一议编号，暂停待核",
    "temporary_repeat_within_12_months": "同一家庭同一事由12个月内救助次数超过规定，暂停待核",
    "temporary_already_paid": "该审批编号已在以前月份发放，不重复发放",
    "temporary_also_on_monthly_program": "临时救助对象本月同时享受低保或特困供养（照发，备查）",
    "temporary_deceased_before_event": "临时救助对象在事由发生前已死亡，不予发放",
    "temporary_recipient_deceased": "临时救助对象已死亡，暂停待核",
    "temporary_same_approval_no": "同一审批编号被重复报送（只发放一次）",
}
# The monthly watch list (监测预警名单, issue 20): each entry names its rule; thresholds are
# policy_parameters.csv rows (watch_*), read by pipelines/watch.py.
WATCH_RULES = {
    "near_standard": "人均收入接近低保标准",
    "recent_exit": "近期退出低保或特困供养",
    "income_drop": "家庭收入较上月骤降",
    "household_size_change": "保障人口数较上月大幅变化",
    "low_income_unassisted": "低收入人口未纳入救助（应保未保）",
    "orphan_ageing_out": "孤儿即将年满停发年龄",
    "age_threshold": "即将跨越年龄节点（须复核）",
}
# The visit list (走访探视名单): who is to be visited, and why.
VISIT_RULES = {
    "tekun_dispersed": "分散供养特困人员",
    "dibao_elderly_alone": "独居老年低保对象（一人户）",
    "dispersed_orphan": "散居孤儿、事实无人抚养儿童",
    "nursing_subsidy": "重度残疾人（领取护理补贴）",
    "dibao_ill_or_disabled": "低保家庭重病、重残成员",
}
# Optional roster column (contract section 1: unknown columns are kept): the township or street
# office (乡镇/街道) a person belongs to, by which the visit list is grouped where a county gives it.
TOWNSHIP_HEADERS = ("乡镇（街道）", "乡镇(街道)", "乡镇街道", "乡镇/街道", "乡镇", "街道", "township")

# A bank's failure reason that says the account itself is gone (closed, cancelled, never existed;
# ISO 20022 AC04 closed, AC01 incorrect number): no later payment goes to that account until the
# roster delivers another one. Other failures (a name mismatch, a frozen card) are reissued as usual.
CLOSED_ACCOUNT_WORDS = ("销户", "注销", "不存在", "无此账", "AC04", "AC01")
FINDING_ACTIONS = ("not_paid", "held", "paid_and_flagged", "file_rejected", "recorded")
SEVERITIES = ("error", "warning", "info")
# Every report shows a code by its label, and every report the same label (issue 21): these, and
# PROGRAM_NAMES_ZH, LINE_TYPE_ZH and FINDING_TYPES above (a hold reason is a finding type).
FINDING_ACTIONS_ZH = {"not_paid": "不予发放", "held": "暂停发放待核", "paid_and_flagged": "照发并核查",
                      "file_rejected": "文件退回", "recorded": "记录"}
SEVERITY_ZH = {"error": "严重", "warning": "警告", "info": "提示"}
DISPOSITIONS_ZH = {"accepted": "采用", "quarantined": "暂缓处理", "duplicate": "重复报送"}
PAYOUT_FORMATS_ZH = {"csv": "CSV（UTF-8）", "csv_gbk": "CSV（GB18030）", "xlsx": "Excel", "pain001": "ISO 20022 pain.001"}
FUND_LEVELS_ZH = {"central": "中央", "provincial": "省级", "city": "市级", "county": "县级"}


def label(vocabulary: dict[str, str], code):
    """A code as its readers read it: its label, the code itself where the vocabulary has none (a
    code added to the data before its label is never hidden), '' for no code."""
    if code is None or code == "":
        return ""
    return vocabulary.get(code, code)
# Why a household or person is no longer on a program (the analyst database's exits): a not_paid
# finding or not-paid reason of the month after (a FINDING_TYPES code) names it when there is one;
# otherwise one of these, checked in this order.
EXIT_REASON_ZH = {
    "quarantined": "本月报送行有误被退回（待更正）",
    "duplicate": "本月仅有重复报送行",
    "county_file_missing": "所在县区本月名册未报送或被整体退回",
    "enrolment_ended": "名册载明的享受期已终止",
    "deceased": "已死亡",
    "not_delivered": "本月名册中不再有此户（人）",
}

URBAN_RURAL = ("城市", "农村")
SEXES = ("男", "女")
CARE_LEVELS = ("全自理", "半护理", "全护理")
RELATIONS = ("户主", "配偶", "子女", "父母", "其他")
CLASS_CATEGORIES = ("老年", "重残", "重病", "未成年")
PLACEMENTS = {
    "tekun": ("集中供养", "分散供养"),
    "orphan": ("机构养育", "社会散居", "事实无人抚养"),
}
SUBSIDY_TYPES = {"生活补贴": "disability_living", "护理补贴": "disability_nursing"}
# temporary assistance (临时救助, contract section 2): the event a case answers and who approved it
EVENT_TYPES = ("疫情确诊", "隔离收治", "病亡", "失业滞留", "因病", "因灾", "其他")
EVENT_TYPES_EN = {"疫情确诊": "confirmed COVID-19 case", "隔离收治": "member in isolation or hospital",
                  "病亡": "death of a member", "失业滞留": "stranded without work (often from elsewhere)",
                  "因病": "illness", "因灾": "disaster", "其他": "other hardship"}
APPROVAL_LEVELS = ("乡镇", "县级")
DISABILITY_CATEGORIES = {"视力": "1", "听力": "2", "言语": "3", "肢体": "4", "智力": "5", "精神": "6", "多重": "7"}
DISABILITY_GRADES = {"一级": "1", "二级": "2", "三级": "3", "四级": "4"}

# Contract section 2: canonical column -> accepted headers. The canonical English name is always
# accepted too. Headers are compared after trimming, full-width folding and removing spaces and '*'.
COMMON_COLUMNS = {
    "region_code": ("行政区划代码", "区划代码"),
    "name": ("姓名",),
    "id_number": ("公民身份号码", "身份证号", "身份证号码"),
    "sex": ("性别",),
    "urban_rural": ("城乡类别", "城乡属性"),
    "bank_name": ("开户银行",),
    "bank_account": ("银行账号", "账号", "社保卡号"),
    "account_holder": ("账户名", "户名"),
    "enrolled_from": ("纳入年月", "享受起始年月"),
    "enrolled_to": ("终止年月",),
    "approved_amount": ("核定金额", "月保障金额"),
}
PROGRAM_COLUMNS = {
    "dibao": {
        "household_id": ("家庭编号",),
        "relation": ("与户主关系",),
        "household_size": ("保障人口数",),
        "household_income": ("家庭月总收入",),
        "class_category": ("分类施保类别",),
    },
    "tekun": {
        "placement": ("供养方式",),
        "care_level": ("生活自理能力",),
        "institution_code": ("供养机构代码",),
        # extension (optional): a working-age person qualifies for tekun by disability
        "disability_cert_no": ("残疾人证号",),
    },
    "orphan": {
        "placement": ("养育方式",),
        "guardian_name": ("监护人姓名",),
        "guardian_id_number": ("监护人身份证号",),
    },
    "disability": {
        "subsidy_type": ("补贴类型",),
        "disability_cert_no": ("残疾人证号",),
        "disability_category": ("残疾类别",),
        "disability_grade": ("残疾等级",),
    },
    "temporary": {
        "household_id": ("家庭编号",),
        "event_type": ("救助事由",),
        "event_date": ("事由发生日期",),
        "approval_no": ("审批编号",),
        "approval_level": ("审批层级",),
        "case_by_case_no": ("一事一议编号",),
    },
}
# Headers a program accepts for a common column besides the common ones: a case's amount is 救助金额.
EXTRA_ALIASES = {"temporary": {"approved_amount": ("救助金额",)}}
# Common columns that do not apply to a program: its files' columns of that name are kept for lineage
# only (extra), and the rows carry them empty (a one-off case has no entitlement months).
NOT_APPLICABLE = {"temporary": ("enrolled_from", "enrolled_to")}
# Without these a file is rejected whole; every other column may be blank or absent.
REQUIRED_COLUMNS = {
    "common": ("region_code", "name", "id_number", "urban_rural", "bank_account", "enrolled_from"),
    "dibao": ("household_id", "relation", "household_size", "household_income"),
    "tekun": ("placement", "care_level"),
    "orphan": ("placement",),
    "disability": ("subsidy_type", "disability_grade"),
    "temporary": ("event_type", "event_date", "approval_no", "approval_level", "approved_amount"),
}


def columns_for(program: str) -> list[str]:
    """Canonical columns of a program's roster, in a stable order."""
    return list(COMMON_COLUMNS) + list(PROGRAM_COLUMNS[program])


def required_for(program: str) -> list[str]:
    skip = NOT_APPLICABLE.get(program, ())
    return [c for c in REQUIRED_COLUMNS["common"] if c not in skip] + list(REQUIRED_COLUMNS[program])


def header_aliases(program: str) -> dict[str, str]:
    """Normalised header text -> canonical column."""
    skip = NOT_APPLICABLE.get(program, ())
    table = {c: a + EXTRA_ALIASES.get(program, {}).get(c, ()) for c, a in COMMON_COLUMNS.items() if c not in skip}
    table.update(PROGRAM_COLUMNS[program])
    out: dict[str, str] = {}
    for canonical, aliases in table.items():
        out[normalise_header(canonical)] = canonical
        for alias in aliases:
            out[normalise_header(alias)] = canonical
    return out


_FULLWIDTH = {i: i - 0xFEE0 for i in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def fold_fullwidth(text: str) -> str:
    return text.translate(_FULLWIDTH)


def normalise_header(text: str) -> str:
    t = fold_fullwidth(str(text)).strip().lower()
    for ch in (" ", "*", "\n", "\r", "\t", "（必填）", "(必填)"):
        t = t.replace(ch, "")
    return t


def column_header(program: str, column: str) -> str:
    """The header a caseworker sees in the roster for a canonical column: the first accepted header."""
    aliases = (PROGRAM_COLUMNS.get(program, {}).get(column) or EXTRA_ALIASES.get(program, {}).get(column)
               or COMMON_COLUMNS.get(column))
    return aliases[0] if aliases else column
