-- int_fund_split: every line's amount attributed to central, provincial, city and county funds
-- (contract section 3, fund_shares.csv; longest region prefix, then latest effective_from).
-- A price-subsidy line is funded by a `price_subsidy` row where one matches (it wins), else by the
-- shares of the program that carries it (the line's own program). A line no row funds gets no
-- split here: check_reference refuses such a table first, and compute's LINE_AUDITS fail the run.
-- A line paid forward in a county whose reference data is held (int_reference_held_due) repeats a
-- line of an earlier payroll, amount for amount: it keeps that line's parts, since the county's
-- fund_shares.csv rows may be what is broken.
-- Each part is the floor of amount_fen × share; the fen left over go one each to the parts with
-- the largest remainders (ties: central, provincial, city, county), so the parts add up exactly.
-- grain: one row per payment line.
-- kind: table
with lines as (
    select
        *,
        case
            when line_program like 'disability%' then 'disability'
            else line_program
        end as fund_program,
        CAST(round(amount * 100) AS BIGINT) as amount_fen,
        json_extract_string(inputs, '$.paid_forward_line') as paid_forward_line
    from int_payment_lines
),

forward as (
    select l.line_key, h.fund_version, h.fund_central, h.fund_provincial, h.fund_city, h.fund_county,
           CAST(round((h.fund_central + h.fund_provincial + h.fund_city + h.fund_county) * 100) AS BIGINT) as parts_fen,
           l.amount_fen
    from lines l
    -- a source line without parts (an older warehouse's) is split by the table instead, where a
    -- broken row fails the run's audit rather than leaving the line's parts empty without a word
    join hist_ledger h on h.line_id = l.paid_forward_line
     and h.fund_central is not null and h.fund_provincial is not null and h.fund_city is not null
     and h.fund_county is not null
    where l.basis = 'reference_held'
),

shares as (
    select l.line_key, l.amount_fen, f.version_id as fund_version,
           [f.central, f.provincial, f.city, f.county] as share_list
    from lines l
    join stg_fund_shares f
      on (f.program = l.fund_program or (l.line_type = 'price_subsidy' and f.program = 'price_subsidy'))
     and starts_with(l.region_code, f.region_code)
     and f.effective_from <= l.service_month
    where l.line_key not in (select line_key from forward)
    qualify row_number() over (partition by l.line_key
                               order by (f.program = 'price_subsidy') desc, length(f.region_code) desc,
                                        f.effective_from desc) = 1
),

parts as (
    select line_key, amount_fen, fund_version,
           generate_subscripts(share_list, 1) as k,
           unnest(share_list) as share
    from shares
),

floored as (
    select *, CAST(floor(amount_fen * share) AS BIGINT) as floor_fen,
           amount_fen * share - floor(amount_fen * share) as remainder
    from parts
),

allocated as (
    select *,
           floor_fen + CASE WHEN row_number() over (partition by line_key order by remainder desc, k)
                                  <= amount_fen - sum(floor_fen) over (partition by line_key)
                             THEN 1 ELSE 0 END as part_fen
    from floored
)

select
    line_key,
    min(fund_version)                                             as fund_version,
    CAST(CAST(max(part_fen) filter (where k = 1) AS DECIMAL(18, 0)) * 0.01 AS DECIMAL(18, 2)) as fund_central,
    CAST(CAST(max(part_fen) filter (where k = 2) AS DECIMAL(18, 0)) * 0.01 AS DECIMAL(18, 2)) as fund_provincial,
    CAST(CAST(max(part_fen) filter (where k = 3) AS DECIMAL(18, 0)) * 0.01 AS DECIMAL(18, 2)) as fund_city,
    CAST(CAST(max(part_fen) filter (where k = 4) AS DECIMAL(18, 0)) * 0.01 AS DECIMAL(18, 2)) as fund_county,
    sum(part_fen)                                                 as parts_fen,
    min(amount_fen)                                               as amount_fen
from allocated
group by line_key
union all
select line_key, fund_version, fund_central, fund_provincial, fund_city, fund_county, parts_fen, amount_fen
from forward
