-- dim_program: the programs of the ledger, with their Chinese names and the fund program whose
-- shares pay them. grain: one row per ledger program
-- kind: table
select program, program_zh, fund_program from vocab_program
