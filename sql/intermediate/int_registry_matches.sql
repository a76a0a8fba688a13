-- int_registry_matches: accepted rows whose person appears in an external registry extract of the
-- month (public payroll, vehicles, businesses; contract section 3). Reasons to review, never to stop
-- a payment. Which programs each registry concerns: reference registry_checks.csv (extension; a
-- registry it does not list, or a reference folder without it, concerns every program).
-- grain: one row per roster row and registry.
-- kind: table
with registry as (
    select registry, norm_code(id_number) as id_number, norm_text(name) as registry_name,
           min(evidence) as evidence
    from raw_registry
    where norm_code(id_number) is not null
    group by all
),

checks as (
    select norm_text(registry) as registry, string_split(norm_code(programs), ';') as programs
    from raw_registry_checks
)

select p.source_file, p.source_row, p.id_number, p.program, g.registry, g.registry_name, g.evidence
from int_person_programs p
join registry g using (id_number)
left join checks c on c.registry = g.registry
where c.registry is null or list_contains(c.programs, upper(p.program)) or list_contains(c.programs, p.program)
