-- dim_event: the events temporary assistance (临时救助) answers (contract section 2, event_type), with
-- the cases and amounts the ledger holds for each. fact_payment's one_off lines (and their reissues)
-- carry event_type. grain: one row per event type of the vocabulary.
-- kind: table
select
    v.event_type,
    v.event_en,
    v.sort_order,
    count(distinct l.approval_no) filter (where l.line_type = 'one_off')                   as cases_in_ledger,
    coalesce(sum(l.amount) filter (where l.line_type = 'one_off' and l.status = 'payable'), 0)
        ::DECIMAL(18, 2)                                                                  as amount_payable
from vocab_event v
left join payment_ledger l on l.event_type = v.event_type and l.program = 'temporary'
group by all
order by v.sort_order
