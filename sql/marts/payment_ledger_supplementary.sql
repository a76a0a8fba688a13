-- payment_ledger_supplementary: a month already released to the banks, rerun on corrected rosters
-- (a supplementary run). The released batches' lines stand exactly as they were sent; the corrected
-- computation (month_ledger) adds only what they did not carry, in the supplementary batch:
--   a line whose key (service month, program, line type, person; for a one_off line also its
--   approval number) no released line has;
--   a top-up `arrears` line where the corrected amount of a regular or price-subsidy line is higher
--   (arrears_cause supplementary_correction; its fund parts are the difference of the parts; one
--   line per service month, program and person, summing both when both rose).
-- Lower or vanished amounts are never recovered by doudi: compute reports them as findings.
-- Nor is a person's program paid again for a service month that a later payroll already paid
-- (later_paid: late enrolment's arrears, paid from the ledger as released): neither added nor
-- topped up; int_supplementary_findings reports it (paid_by_later_payroll).
-- grain: one row per payment line of the month (released + supplementary).
-- name: supplementary_ledger (compute renames it month_ledger once the comparison is made)
-- kind: table
with added as (
    select f.* replace (case when f.status = 'payable' then getvariable('supplement_batch') end as batch_id)
    from month_ledger f
    -- a one_off line is one case: its approval number joins the key (a person's second case of the
    -- month is a line of its own, not the released first one again)
    where not exists (select 1 from released_lines r
                      where r.service_month = f.service_month and r.program = f.program
                        and r.line_type = f.line_type and r.id_number = f.id_number
                        and r.approval_no is not distinct from f.approval_no)
      and not (f.line_type in ('regular', 'arrears') and exists (
          select 1 from later_paid l
          where l.service_month = f.service_month and l.program = f.program and l.id_number = f.id_number))
),

topup_parts as (
    select f.line_type as corrected_line_type, f.* replace (
        md5(concat_ws('|', f.payroll_month, f.service_month, f.program, 'arrears', f.id_number,
                      getvariable('supplement_batch')))                    as line_id,
        'arrears'                                                          as line_type,
        CAST(f.amount - r.amount AS DECIMAL(18, 2))                        as amount,
        r.amount                                                           as previously_paid,
        'supplementary_correction'                                         as arrears_cause,
        f.formula || '；更正后应发 ' || f.amount::VARCHAR || ' − 已发 ' || r.amount::VARCHAR
            || ' = 补发 ' || (f.amount - r.amount)::VARCHAR                as formula,
        f.fund_central - r.fund_central                                    as fund_central,
        f.fund_provincial - r.fund_provincial                              as fund_provincial,
        f.fund_city - r.fund_city                                          as fund_city,
        f.fund_county - r.fund_county                                      as fund_county,
        getvariable('supplement_batch')                                    as batch_id)
    from month_ledger f
    join released_lines r using (service_month, program, line_type, id_number)
    where f.status = 'payable' and f.line_type in ('regular', 'price_subsidy') and f.amount > r.amount
      and not exists (select 1 from released_lines x
                      where x.service_month = f.service_month and x.program = f.program
                        and x.line_type = 'arrears' and x.id_number = f.id_number)
      and not exists (select 1 from added a
                      where a.service_month = f.service_month and a.program = f.program
                        and a.line_type = 'arrears' and a.id_number = f.id_number)
      and not (f.line_type = 'regular' and exists (
          select 1 from later_paid l
          where l.service_month = f.service_month and l.program = f.program and l.id_number = f.id_number))
),

topups as (
    -- a corrected standard raises a person's regular line and the price subsidy that follows it: one
    -- top-up line per (service month, program, person), the sum of both, both formulas written out
    select * exclude (corrected_line_type) replace (
        sum(amount) over whole                                             as amount,
        sum(previously_paid) over whole                                    as previously_paid,
        sum(fund_central) over whole                                       as fund_central,
        sum(fund_provincial) over whole                                    as fund_provincial,
        sum(fund_city) over whole                                          as fund_city,
        sum(fund_county) over whole                                        as fund_county,
        string_agg(formula, '；') over whole                               as formula)
    from topup_parts
    window whole as (partition by service_month, program, id_number order by corrected_line_type desc
                     rows between unbounded preceding and unbounded following)
    qualify row_number() over (partition by service_month, program, id_number
                               order by corrected_line_type desc) = 1
)

select * from released_lines
union all by name
select * from added
union all by name
select * from topups
