-- Normalisation and identity macros shared by every model (contract section 1).
-- Loaded first by pipelines/sqlrun.py. Pure functions of their arguments: no table access.

-- full-width ASCII (Ａ, ２, ，) and the ideographic space folded to their half-width forms
CREATE OR REPLACE MACRO fold_fullwidth_all(s) AS
    translate(s, '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　', '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~ ');
-- translate() walks its 95-character table for every character: most values hold no full-width
-- character at all, and one regular-expression scan finds out (15x faster on a province's roster)
CREATE OR REPLACE MACRO fold_fullwidth(s) AS
    CASE WHEN regexp_matches(s, '[！-～　]') THEN fold_fullwidth_all(s) ELSE s END;

-- trimmed text, inner runs of white space folded to one space, empty -> NULL. Every Unicode space
-- counts (\p{Zs}: the no-break space U+00A0 that web forms paste, U+2002..U+200A, U+202F): RE2's \s
-- is ASCII only, and a no-break space left in a holder's name reaches the bank, which compares
-- the name character by character.
CREATE OR REPLACE MACRO norm_text(s) AS
    nullif(trim(regexp_replace(fold_fullwidth(s), '[\s\p{Zs}]+', ' ', 'g')), '');

-- a name as delivered holds a character nobody sees: a line break or tab inside it, another control
-- character, a zero-width or direction mark (U+200B..U+200F, U+202A..U+202E, U+2060.., U+FEFF) or a
-- line/paragraph separator. White space at either end is ordinary typing (trimmed, contract section 1).
-- Such a name is quarantined, not repaired: "张\n三" may be 张三 or two people's cells run together,
-- and a bank matches the holder's name character by character, so only the county can say which.
CREATE OR REPLACE MACRO has_hidden_characters(s) AS
    coalesce(regexp_matches(regexp_replace(s, '^[\s\p{Zs}]+|[\s\p{Zs}]+$', '', 'g'),
                            '[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]'), false);

-- codes and numbers: no spaces at all, upper case (lowercase x in ID numbers)
CREATE OR REPLACE MACRO norm_code(s) AS
    nullif(upper(regexp_replace(fold_fullwidth(s), '[\s\p{Zs}]+', '', 'g')), '');

-- months as people type them: 2020-03, 2020/3/1, 202003, 20200301, 2020.3, 2020年3月 -> '2020-03'.
-- A macro's argument is pasted wherever the body names it, so each takes its argument already
-- normalised and names it as few times as it can: the earlier form pasted norm_code(s) 21 times,
-- and DuckDB took 70 ms to bind each norm_month (every month column of every model, every run).
-- A date's day must exist: 2020-02-30 is no month at all (a typing error whose month nobody knows),
-- not February. d is '' when the value names no day; check_day false takes the month whatever the day.
CREATE OR REPLACE MACRO month_of_parts(y, m, d, check_day) AS
    CASE WHEN TRY_CAST(m AS INTEGER) BETWEEN 1 AND 12
              AND CASE WHEN d = '' OR NOT check_day THEN true
                       ELSE TRY_CAST(y || '-' || lpad(m, 2, '0') || '-' || lpad(d, 2, '0') AS DATE) IS NOT NULL END
         THEN y || '-' || lpad(m, 2, '0') END;
CREATE OR REPLACE MACRO month_of_code(t, check_day) AS
    CASE
        WHEN regexp_full_match(t, '\d{6}|\d{8}')
            THEN month_of_parts(substr(t, 1, 4), substr(t, 5, 2), substr(t, 7, 2), check_day)
        WHEN regexp_full_match(t, '\d{4}[-/.]\d{1,2}([-/.]\d{1,2})?(T[0-9:.]*)?')
            THEN month_of_parts(substr(t, 1, 4), regexp_extract(t, '^\d{4}[-/.](\d{1,2})', 1),
                                regexp_extract(t, '^\d{4}[-/.]\d{1,2}[-/.](\d{1,2})', 1), check_day)
        WHEN regexp_full_match(t, '\d{4}年\d{1,2}月(\d{1,2}日)?')
            THEN month_of_parts(substr(t, 1, 4), regexp_extract(t, '年(\d{1,2})月', 1),
                                regexp_extract(t, '月(\d{1,2})日', 1), check_day)
    END;
CREATE OR REPLACE MACRO norm_month(s) AS month_of_code(norm_code(s), true);
-- the month of a registry's death date, whatever its day: a death reported with an impossible day
-- (2020-02-30) still stops payment after its month; a typing error must not pay the dead
CREATE OR REPLACE MACRO death_month_of(s) AS month_of_code(norm_code(s), false);

-- money: '1,234.50', '１２３４．５', '650元' -> DECIMAL(18,2); more than two decimals is ambiguous -> NULL
CREATE OR REPLACE MACRO money_text(s) AS
    regexp_replace(norm_code(s), '[,，元¥￥]', '', 'g');
CREATE OR REPLACE MACRO norm_money(s) AS
    CASE WHEN regexp_full_match(money_text(s), '-?\d{1,16}(\.\d{1,2})?')
         THEN CAST(money_text(s) AS DECIMAL(18, 2)) END;

-- integers such as household_size: '3', '３', '3人'
CREATE OR REPLACE MACRO norm_int(s) AS
    TRY_CAST(regexp_replace(norm_code(s), '人$', '') AS INTEGER);

-- GB 11643: the check character an 18-character ID number must end with
CREATE OR REPLACE MACRO id_expected_check(id) AS
    CASE WHEN regexp_full_match(id, '\d{17}[0-9X]') THEN
        substr('10X98765432', 1 + ((
              7 * CAST(substr(id, 1, 1) AS INTEGER) + 9 * CAST(substr(id, 2, 1) AS INTEGER)
           + 10 * CAST(substr(id, 3, 1) AS INTEGER) + 5 * CAST(substr(id, 4, 1) AS INTEGER)
           +  8 * CAST(substr(id, 5, 1) AS INTEGER) + 4 * CAST(substr(id, 6, 1) AS INTEGER)
           +  2 * CAST(substr(id, 7, 1) AS INTEGER) + 1 * CAST(substr(id, 8, 1) AS INTEGER)
           +  6 * CAST(substr(id, 9, 1) AS INTEGER) + 3 * CAST(substr(id, 10, 1) AS INTEGER)
           +  7 * CAST(substr(id, 11, 1) AS INTEGER) + 9 * CAST(substr(id, 12, 1) AS INTEGER)
           + 10 * CAST(substr(id, 13, 1) AS INTEGER) + 5 * CAST(substr(id, 14, 1) AS INTEGER)
           +  8 * CAST(substr(id, 15, 1) AS INTEGER) + 4 * CAST(substr(id, 16, 1) AS INTEGER)
           +  2 * CAST(substr(id, 17, 1) AS INTEGER)) % 11), 1)
    END;
CREATE OR REPLACE MACRO id_check_ok(id) AS
    coalesce(id_expected_check(id) = substr(id, 18, 1), false);
CREATE OR REPLACE MACRO id_birth_date(id) AS
    CASE WHEN regexp_full_match(id, '\d{17}[0-9X]')
         THEN CAST(try_strptime(substr(id, 7, 8), '%Y%m%d') AS DATE) END;
CREATE OR REPLACE MACRO id_sex(id) AS
    CASE WHEN regexp_full_match(id, '\d{17}[0-9X]')
         THEN CASE WHEN CAST(substr(id, 17, 1) AS INTEGER) % 2 = 1 THEN '男' ELSE '女' END END;

-- masking for every report and analyst view: first 6 and last 4 of an ID; last 4 of an account
CREATE OR REPLACE MACRO mask_id(id) AS
    CASE WHEN id IS NULL THEN NULL
         WHEN length(id) >= 10 THEN substr(id, 1, 6) || repeat('*', length(id) - 10) || substr(id, -4)
         ELSE repeat('*', length(id)) END;
CREATE OR REPLACE MACRO mask_account(a) AS
    CASE WHEN a IS NULL THEN NULL
         WHEN length(a) > 4 THEN repeat('*', length(a) - 4) || substr(a, -4)
         ELSE repeat('*', length(a)) END;
CREATE OR REPLACE MACRO mask_name(n) AS
    CASE WHEN n IS NULL THEN NULL WHEN length(n) <= 1 THEN '*' ELSE substr(n, 1, 1) || repeat('*', length(n) - 1) END;
-- free text typed outside doudi (registry remarks, bank return reasons, clearance notes), the one
-- masking every report and analyst table applies to it: a number of 12 or more digits, which may be
-- an ID number or an account, also written in groups with spaces or dashes (`210102 19400101 0039`,
-- `6222-0202-0011-2233-001`), is shown as an ID (mask_id) if it has an ID's shape, else as an account
-- (mask_account). Groups after the first need 3 digits or more, so months and dates (`2020-03
-- 2020-04`, `2020-5-3`) stay as written. Text without such a number is returned untouched, cheaply.
CREATE OR REPLACE MACRO mask_number_digits(d) AS
    CASE WHEN regexp_full_match(d, '[0-9]{17}[0-9X]') THEN mask_id(d) ELSE mask_account(d) END;
CREATE OR REPLACE MACRO mask_long_numbers(s) AS
    CASE WHEN NOT regexp_matches(s, '[0-9](?:[ \x{3000}–-]?[0-9]){11}') THEN s
         ELSE array_to_string(list_transform(
             regexp_extract_all(s, '[0-9]+(?:[ \x{3000}–-][0-9]{3,})*[Xx]?|[^0-9]+'),
             lambda t: CASE WHEN length(regexp_replace(t, '[^0-9]', '', 'g')) < 12 THEN t
                            ELSE mask_number_digits(upper(regexp_replace(t, '[^0-9Xx]', '', 'g'))) END), '')
    END;

-- months as dates for arithmetic, and back
CREATE OR REPLACE MACRO month_date(m) AS CAST(m || '-01' AS DATE);
CREATE OR REPLACE MACRO month_text(d) AS strftime(d, '%Y-%m');
CREATE OR REPLACE MACRO add_months(m, k) AS month_text(month_date(m) + to_months(CAST(k AS INTEGER)));

-- a payout record's reference (contract section 4): <YYYYMM><bank code><batch><sequence>, e.g.
-- 202003ICBCR000123. Six digits of sequence; a bank with more records in the run than six digits
-- count gets as many digits as its largest sequence needs, for every one of its refs (lpad alone
-- would cut 1234567 to 123456, the ref of another record)
CREATE OR REPLACE MACRO payment_ref(month_compact, bank_code, batch_id, seq, bank_records) AS
    month_compact || bank_code || batch_id || lpad(seq::VARCHAR, greatest(6, length(bank_records::VARCHAR))::INTEGER, '0');

-- dates as people type them: 2020-03-05, 2020/3/5, 20200305, 2020.3.5, 2020年3月5日 -> DATE; else NULL
CREATE OR REPLACE MACRO norm_date(s) AS
    CAST(try_strptime(regexp_replace(regexp_replace(norm_code(s), '日$', ''), '[年月/.]', '-', 'g'),
                      ['%Y-%m-%d', '%Y%m%d']) AS DATE);

-- 不断 (issue 20): a county whose reference data check_reference held for this payroll month
-- (variable held_counties, set by compute from reference_check.json; unset is an error, never "none")
CREATE OR REPLACE MACRO reference_held(region) AS
    list_contains(coalesce(CAST(getvariable('held_counties') AS VARCHAR[]),
                           error('held_counties is not set: compute sets it from check_reference')), region);
