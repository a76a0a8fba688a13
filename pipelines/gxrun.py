"""Great Expectations, called from plain Python: validate a pandas frame against a list of
expectation configurations (as stored in expectations/*.json) in an ephemeral context."""

from __future__ import annotations

import os

from pipelines.settings import RunError

os.environ.setdefault("TQDM_DISABLE", "1")  # GX progress bars would flood task logs


def validate_frame(name: str, frame, expectations: list[dict], parameters: dict | None = None,
                   result_format: dict | None = None):
    """Run the expectations on the frame; return GX's ExpectationSuiteValidationResult."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = context.data_sources.add_pandas(f"frames_{name}").add_dataframe_asset(name) \
        .add_batch_definition_whole_dataframe("all")
    suite = gx.ExpectationSuite(name=name)
    for e in expectations:
        suite.add_expectation_configuration(ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"],
                                                                     meta=e["meta"]))
    if len(suite.expectations) != len(expectations):
        # GX keeps one expectation per type and column: a second one would be silently dropped
        raise RunError(f"suite {name}: {len(expectations)} expectations configured, {len(suite.expectations)} "
                       "kept; give each rule its own column")
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=f"v_{name}", data=batch,
                                                                            suite=suite))
    result = definition.run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters or {},
                            result_format=result_format or {"result_format": "COMPLETE"})
    for r in result.results:
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RunError(f"GX expectation {r.expectation_config.type} in {name} failed to run: "
                           f"{r.exception_info.get('exception_message')}")
    return result
