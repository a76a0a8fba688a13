-- audit: engine_lines (every engine run, partitioned or not, while int_fund_split exists)
-- message: {n} lines whose fund parts do not add up (check fund_shares.csv sums to 1)
-- The rows: split lines whose central, provincial, city and county parts differ from the amount, in fen.
select * from int_fund_split where parts_fen <> amount_fen
