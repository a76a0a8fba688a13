"""Great Expectations itself, on a pandas frame: the oracle that tests/test_expectations_sql.py
holds the SQL evaluation of the suites (pipelines/expectations_sql.py) against. doudi validated
this way until issue 22 moved the evaluation into DuckDB; the runtime no longer imports it.

Validate a pandas frame against a list of expectation configurations (as stored in
expectations/*.json) in an ephemeral context.

One ephemeral context serves the whole process, and a suite with its validation definition is built
once per name and set of expectations: building them took about half of every call (0.6 s of 1.27 s,
six calls a month). The frame and the expectation parameters are given to each run, so a cached
definition validates exactly what a fresh one would."""

from __future__ import annotations

import json
import os

from pipelines.settings import RunError  # noqa: I001

os.environ.setdefault("TQDM_DISABLE", "1")  # GX progress bars would flood task logs

_context = None
_definitions: dict[str, tuple[str, object]] = {}  # suite name -> (its expectations as JSON, definition)


def _gx_context():
    global _context
    if _context is None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        _context = gx.get_context(mode="ephemeral")
        _context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return _context


def _validation_definition(name: str, expectations: list[dict]):
    """The cached definition for this suite, or a new one when the name is new or its expectations
    changed (the old one is deleted first: the names stay what the reports have always shown)."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    fingerprint = json.dumps(expectations, sort_keys=True, default=str)
    cached = _definitions.get(name)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    context = _gx_context()
    if cached is not None:
        context.validation_definitions.delete(f"v_{name}")
        context.suites.delete(name)
        context.data_sources.delete(f"frames_{name}")
        del _definitions[name]
    batch = context.data_sources.add_pandas(f"frames_{name}").add_dataframe_asset(name) \
        .add_batch_definition_whole_dataframe("all")
    suite = gx.ExpectationSuite(name=name)
    for e in expectations:
        suite.add_expectation_configuration(ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"],
                                                                     meta=e["meta"]))
    if len(suite.expectations) != len(expectations):
        # GX keeps one expectation per type and column: a second one would be silently dropped
        context.data_sources.delete(f"frames_{name}")
        raise RunError(f"suite {name}: {len(expectations)} expectations configured, {len(suite.expectations)} "
                       "kept; give each rule its own column")
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=f"v_{name}", data=batch,
                                                                            suite=suite))
    _definitions[name] = (fingerprint, definition)
    return definition


def validate_frame(name: str, frame, expectations: list[dict], parameters: dict | None = None,
                   result_format: dict | None = None):
    """Run the expectations on the frame; return GX's ExpectationSuiteValidationResult."""
    definition = _validation_definition(name, expectations)
    result = definition.run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters or {},
                            result_format=result_format or {"result_format": "COMPLETE"})
    for r in result.results:
        # exception_info is flat, or keyed by the metric that raised (a pair compared with pandas'
        # NA does: "boolean value of NA is ambiguous", and the expectation then reports nothing)
        info = r.exception_info or {}
        raised = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
        for i in raised:
            if i.get("raised_exception"):
                raise RunError(f"GX expectation {r.expectation_config.type} in {name} failed to run: "
                               f"{i.get('exception_message')}")
    return result
