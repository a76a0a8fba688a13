-- audit: engine_month
-- message: {n} reissue lines for payments the bank did not return as failed, or already reissued
-- A failed line that an earlier reissue named is owed through that reissue (if it failed too), never again.
select m.line_id
from (select line_id, unnest(reissue_of) as failed_id from month_ledger
      where line_type = 'reissue' and status = 'payable') m
left join hist_ledger h on h.line_id = m.failed_id
where h.payment_state is distinct from 'failed'
   or exists (select 1 from (select unnest(reissue_of) as r from hist_ledger
                             where line_type = 'reissue' and status = 'payable') x
              where x.r = m.failed_id)
