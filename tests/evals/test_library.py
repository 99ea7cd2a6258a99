"""The evaluation library on offline models: datasets and their versions, each evaluator, experiments
(concurrency bound, repetitions, the cost cap, progress, failures kept), A/B comparison with an interval,
the backend benchmark's Pareto front and recommendation, and the exports."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import pytest

from agentadapter import LLM
from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.errors import InvalidRequestError
from agentadapter.evals import (
    AgentSubject,
    Case,
    Contains,
    Dataset,
    ExactMatch,
    FunctionEvaluator,
    JSONSchemaValid,
    LLMJudge,
    MaxCost,
    MaxLatency,
    ModelSubject,
    NumericClose,
    RegexMatch,
    SemanticSimilar,
    SubjectOutput,
    ToolCalled,
    WorkflowSubject,
    benchmark_report,
    bootstrap_interval,
    compare,
    from_spec,
    load_dataset,
    parse_dataset,
    run_experiment,
    to_csv,
    to_json,
)
from agentadapter.evals.evaluators import EvalContext
from agentadapter.llm.messages import Request
from agentadapter.testing import FunctionBackend
from fakes.embedding import fake_vector
from fakes.openai_server import OpenAIFake

QUESTIONS = {
    "What is the capital of France?": "Paris",
    "What is 6 times 7?": "42",
    "Which planet is known as the red planet?": "Mars",
    "What is the chemical symbol for gold?": "Au",
    "Who wrote Hamlet?": "Shakespeare",
    "What is the boiling point of water in Celsius?": "100",
    "How many continents are there?": "7",
    "What gas do plants absorb?": "carbon dioxide",
}


def last_user_text(request: Request) -> str:
    return request.messages[-1].text


def knows(request: Request) -> str:
    return QUESTIONS.get(last_user_text(request), "I do not know")


def qa_dataset(**kwargs) -> Dataset:
    return Dataset.of("qa", [{"input": q, "expected": a} for q, a in QUESTIONS.items()],
                      evaluators=[{"type": "contains"}], **kwargs)


def priced_llm(**backends: FunctionBackend) -> LLM:
    """Offline facade whose scripted backends have catalog prices (USD per million tokens)."""
    catalog = {f"{name}/m": {"pricing": {"input": price, "output": price}}
               for name, price in (("good", 30.0), ("cheap", 1.0), ("mid", 5.0), ("pricey", 60.0))}
    return LLM(config={"catalog": catalog}, backends=backends, environ={})


def context(answer: SubjectOutput, expected=None, llm=None, **case) -> EvalContext:
    return EvalContext(Case(input=case.pop("input", "q"), expected=expected, id="c1", **case), answer, llm)


# ------------------------------------------------------------------------------------------ datasets


def test_yaml_jsonl_and_csv_give_the_same_cases_and_version(tmp_path):
    yaml_file = tmp_path / "qa.yaml"
    yaml_file.write_text("name: qa\ncases:\n  - {id: a, input: 'What is 6 times 7?', expected: 42}\n"
                         "  - {id: b, input: Hi, expected: hello, metadata: {lang: en}}\n")
    jsonl_file = tmp_path / "qa.jsonl"
    jsonl_file.write_text('{"id": "a", "input": "What is 6 times 7?", "expected": 42}\n\n# comment\n'
                          '{"id": "b", "input": "Hi", "expected": "hello", "metadata": {"lang": "en"}}\n')
    csv_file = tmp_path / "qa.csv"
    csv_file.write_text("id,input,expected,lang\na,What is 6 times 7?,42,\nb,Hi,hello,en\n")
    from_yaml, from_jsonl, from_csv = (load_dataset(p) for p in (yaml_file, jsonl_file, csv_file))
    assert from_yaml.cases == from_jsonl.cases
    assert from_yaml.version == from_jsonl.version
    assert from_csv.cases[0].expected == 42 and from_csv.cases[1].metadata == {"lang": "en"}
    assert from_csv.cases[0].metadata == {"lang": ""}  # an empty CSV cell is kept as what it is
    assert from_jsonl.name == "qa" and len(from_yaml) == 2


def test_the_version_is_a_content_hash():
    one = Dataset.of("x", ["a", "b"])
    assert one.version == Dataset.of("renamed", ["a", "b"]).version  # the name is not content
    assert one.version != Dataset.of("x", ["a", "c"]).version
    assert one.version != Dataset.of("x", ["a", "b"], evaluators=["exact"]).version
    assert len(one.version) == 16 and int(one.version, 16) >= 0


@pytest.mark.parametrize(("text", "fmt", "message"), [
    ("cases: []", "yaml", "has no cases"),
    ("cases: [{expected: 1}]", "yaml", "'input' is required"),
    ("cases: [{input: a, id: x}, {input: b, id: x}]", "yaml", "appears twice"),
    ("cases: [{input: a, bogus: 1}]", "yaml", "unknown field"),
    ("{input: [", "yaml", "not valid YAML"),
    ('{"input": "a"}\nnot json\n', "jsonl", "line 2"),
    ("question,answer\na,b\n", "csv", "'input' column"),
    ("cases: [{input: a}]\nevaluators: [{value: 1}]", "yaml", "'type'"),
    ("nope: 1", "yaml", "unknown dataset field"),
])
def test_bad_datasets_are_refused_with_what_to_fix(text, fmt, message):
    with pytest.raises(InvalidRequestError, match=message):
        parse_dataset(text, fmt)


def test_an_unknown_suffix_or_a_missing_file_says_so(tmp_path):
    with pytest.raises(InvalidRequestError, match="cannot tell the format"):
        load_dataset(tmp_path / "cases.txt")
    with pytest.raises(InvalidRequestError, match="cannot read dataset file"):
        load_dataset(tmp_path / "missing.yaml")


# ---------------------------------------------------------------------------------------- evaluators


async def test_text_evaluators():
    paris = SubjectOutput(output="The capital is Paris.", text="The capital is Paris.")
    assert (await ExactMatch().evaluate(context(paris, "Paris"))).value == 0.0
    assert (await ExactMatch().evaluate(context(SubjectOutput(output="Paris ", text="Paris "), "Paris"))).value == 1.0
    assert (await ExactMatch(case_sensitive=False).evaluate(
        context(SubjectOutput(output="paris", text="paris"), "Paris"))).value == 1.0
    assert (await Contains().evaluate(context(paris, "paris"))).value == 1.0
    half = await Contains(["Paris", "France"]).evaluate(context(paris))
    assert half.value == 0.5 and "France" in half.reason
    assert (await RegexMatch(r"capital is \w+").evaluate(context(paris))).value == 1.0
    assert (await RegexMatch(r"^Paris$").evaluate(context(paris))).value == 0.0


async def test_structured_and_numeric_evaluators():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    good = SubjectOutput(output='```json\n{"city": "Paris"}\n```', text='```json\n{"city": "Paris"}\n```')
    assert (await JSONSchemaValid(schema).evaluate(context(good))).value == 1.0
    typed = SubjectOutput(output={"town": "Paris"}, text='{"town": "Paris"}')
    bad = await JSONSchemaValid(schema).evaluate(context(typed))
    assert bad.value == 0.0 and "city" in bad.reason
    not_json = await JSONSchemaValid(schema).evaluate(context(SubjectOutput(output="Paris", text="Paris")))
    assert not_json.value == 0.0 and "not JSON" in not_json.reason
    answer = SubjectOutput(output="It is about 3.14159.", text="It is about 3.14159.")
    assert (await NumericClose(tolerance=0.001).evaluate(context(answer, 3.1416))).value == 1.0
    assert (await NumericClose(tolerance=0.01, relative=True).evaluate(context(answer, "3.2"))).value == 0.0
    assert (await NumericClose().evaluate(context(SubjectOutput(output=1_000, text="1,000"), 1000))).value == 1.0
    with pytest.raises(InvalidRequestError, match="no expected output"):
        await NumericClose().evaluate(context(answer))


async def test_tool_call_latency_cost_and_function_evaluators():
    answer = SubjectOutput(output="", text="", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
                           latency_ms=120.0, cost_usd=0.002)
    assert (await ToolCalled("get_weather", {"city": "Paris"}).evaluate(context(answer))).value == 1.0
    assert (await ToolCalled("get_weather", {"city": "Rome"}).evaluate(context(answer))).value == 0.5
    missing = await ToolCalled("search").evaluate(context(answer))
    assert missing.value == 0.0 and "get_weather" in missing.reason
    assert (await MaxLatency(200).evaluate(context(answer))).value == 1.0
    assert (await MaxLatency(100).evaluate(context(answer))).value == 0.0
    assert (await MaxCost(0.001).evaluate(context(answer))).value == 0.0

    async def polite(case, out):
        return 0.8, "mostly polite"

    score = await FunctionEvaluator(polite).evaluate(context(answer))
    assert (score.name, score.value, score.reason) == ("polite", 0.8, "mostly polite")
    assert (await FunctionEvaluator(lambda c, o: 7, name="big").evaluate(context(answer))).value == 1.0  # clamped
    failed = await ExactMatch().evaluate(context(SubjectOutput(error="APITimeoutError: slow"), "x"))
    assert failed.value == 0.0 and "APITimeoutError" in failed.reason


async def test_the_judge_grades_with_its_own_model_and_its_cost_is_its_own():
    def judge(request: Request) -> str:
        assert request.output is not None  # asked for structured output
        prompt = last_user_text(request)
        assert "Rubric:\nMentions Paris" in prompt and "Reference answer:\nParis" in prompt
        return json.dumps({"score": 1 if "Answer:\nParis" in prompt else 0.2, "reason": "checked"})

    llm = priced_llm(pricey=FunctionBackend(judge, name="pricey"))
    evaluator = LLMJudge("pricey/m", "Mentions Paris")
    good = await evaluator.evaluate(context(SubjectOutput(output="Paris", text="Paris"), "Paris", llm))
    poor = await evaluator.evaluate(context(SubjectOutput(output="Rome", text="Rome"), "Paris", llm))
    assert (good.value, poor.value, good.reason) == (1.0, 0.2, "checked")
    assert good.cost_usd > 0  # the judge's call is priced and reported with the score
    await llm.aclose()


async def test_semantic_similarity_goes_through_llm_embed():
    async with OpenAIFake() as fake:
        llm = LLM(config={"backends": {"openai": {"type": "openai", "base_url": f"{fake.url}/v1", "api_key": "k"}}},
                  environ={})
        evaluator = SemanticSimilar("openai/text-embedding-3-small")
        same = await evaluator.evaluate(context(SubjectOutput(output="Paris", text="Paris"), "Paris", llm))
        assert same.value == pytest.approx(1.0) and same.cost_usd > 0
        other = await evaluator.evaluate(context(SubjectOutput(output="Rome", text="Rome"), "Paris", llm))
        a = fake_vector("text-embedding-3-small", "Rome", 8)
        b = fake_vector("text-embedding-3-small", "Paris", 8)
        cosine = sum(x * y for x, y in zip(a, b, strict=True)) / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)
        assert other.value == pytest.approx(max(0.0, min(1.0, cosine)), abs=1e-6)
        await llm.aclose()


def test_specs_build_evaluators_and_refuse_what_is_wrong():
    assert isinstance(from_spec("exact"), ExactMatch)
    assert isinstance(from_spec({"type": "tool_call", "tool": "t", "arguments": {"a": 1}}), ToolCalled)
    assert from_spec({"type": "contains", "value": "x", "name": "has_x"}).name == "has_x"
    with pytest.raises(InvalidRequestError, match="unknown evaluator type 'python'"):
        from_spec({"type": "python", "code": "1"})
    with pytest.raises(InvalidRequestError, match="unknown field"):
        from_spec({"type": "exact", "module": "os"})
    with pytest.raises(InvalidRequestError, match="'max_ms' is required"):
        from_spec({"type": "latency"})
    with pytest.raises(InvalidRequestError, match="wrong type"):
        from_spec({"type": "latency", "max_ms": True})
    with pytest.raises(InvalidRequestError, match="does not compile"):
        from_spec({"type": "regex", "pattern": "("})
    # Tenant data: schemas that are unsafe to walk, or that carry regular expressions, are refused.
    with pytest.raises(InvalidRequestError, match=r"\$ref"):
        from_spec({"type": "json_schema", "schema": {"$ref": "https://example.com/s.json"}}, trusted=False)
    with pytest.raises(InvalidRequestError, match="pattern"):
        from_spec({"type": "json_schema", "schema": {"type": "string", "pattern": "(a+)+$"}}, trusted=False)
    with pytest.raises(InvalidRequestError, match="longer than 1000"):
        from_spec({"type": "regex", "pattern": "a" * 1001}, trusted=False)


async def test_a_catastrophic_pattern_is_bounded_in_time():
    evaluator = from_spec({"type": "regex", "pattern": r"(\w+\s?)+$"}, trusted=False)
    answer = "a" * 5000 + "!"
    score = await evaluator.evaluate(context(SubjectOutput(output=answer, text=answer)))
    assert score.value == 0.0 and "longer than" in score.reason


# ---------------------------------------------------------------------------------------- experiments


async def test_an_experiment_keeps_every_answer_score_token_and_error():
    def flaky(request: Request) -> str:
        if "Hamlet" in last_user_text(request):
            raise RuntimeError("backend exploded")
        return knows(request)

    llm = priced_llm(good=FunctionBackend(flaky, name="good"))
    agent = LLMAgent("scripted", model="good/m")
    result = await run_experiment(qa_dataset(), [agent], llm=llm, repeat=2, concurrency=4)
    assert len(result.results) == 2 * len(QUESTIONS) == result.planned and result.stopped is None
    hamlet = [r for r in result.results if r.case_id == "case-5"]
    assert len(hamlet) == 2 and all(r.error and "backend exploded" in r.error and r.score == 0 for r in hamlet)
    paris = next(r for r in result.results if r.case_id == "case-1")
    assert (paris.text, paris.scores["contains"].value) == ("Paris", 1.0)
    assert paris.usage["input_tokens"] > 0 and paris.cost_usd > 0
    summary = result.summary("scripted")
    assert (summary.cases, summary.errors) == (16, 2)
    assert summary.score == pytest.approx(14 / 16)
    assert result.cost_usd == pytest.approx(sum(r.cost_usd for r in result.results))
    await llm.aclose()


async def test_concurrency_is_bounded_and_progress_is_reported():
    in_flight, peak = 0, 0
    release = asyncio.Event()

    async def slow(request: Request) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            release.set()  # the bound is reached: let everyone go
        await release.wait()
        in_flight -= 1
        return knows(request)

    llm = priced_llm(good=FunctionBackend(slow, name="good"))
    seen: list[tuple[int, int]] = []
    result = await run_experiment(qa_dataset(), [ModelSubject("good/m")], llm=llm, concurrency=3,
                                  on_progress=lambda p: seen.append((p.done, p.total)))
    assert peak == 3
    assert seen == [(i, len(QUESTIONS)) for i in range(1, len(QUESTIONS) + 1)]
    assert result.summary("good/m").score == 1.0
    await llm.aclose()


async def test_the_cost_cap_stops_scheduling_and_says_so():
    llm = priced_llm(pricey=FunctionBackend(knows, name="pricey"))
    first = await run_experiment(qa_dataset(), [ModelSubject("pricey/m")], llm=llm, concurrency=1)
    per_case = first.cost_usd / len(first.results)
    capped = await run_experiment(qa_dataset(), [ModelSubject("pricey/m")], llm=llm, concurrency=1,
                                  max_cost_usd=per_case * 2.5)
    assert capped.stopped == "max_cost_usd"
    assert len(capped.results) == 3  # the third crosses the cap; nothing starts after it
    assert capped.cost_usd >= per_case * 2.5 and capped.to_dict()["completed"] == 3
    await llm.aclose()


async def test_tool_calls_of_an_agent_are_checked_and_a_workflow_is_a_subject():
    from agentadapter.agents.tools.decorator import tool

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    dataset = Dataset.of("tools", [{"input": "Weather?", "evaluators": [{"type": "tool_call", "tool": "get_weather"}]}])
    agent = LLMAgent("caller", model="test/tools", tools=[get_weather])
    writer = LLMAgent("writer", model="test/echo")
    llm = priced_llm()
    result = await run_experiment(dataset, [agent, WorkflowSubject([writer], name="flow")], llm=llm)
    by_subject = {r.subject: r for r in result.results}
    assert by_subject["caller"].scores["tool:get_weather"].value == 1.0
    assert by_subject["caller"].tool_calls[0]["name"] == "get_weather"
    assert by_subject["flow"].scores["tool:get_weather"].value == 0.0 and by_subject["flow"].text == "Weather?"
    await llm.aclose()


async def test_subjects_and_options_are_checked_before_anything_runs():
    agent = LLMAgent("a", model="test/echo")
    for kwargs, message in [({"concurrency": 0}, "concurrency"), ({"repeat": 0}, "repeat"),
                            ({"max_cost_usd": 0}, "max_cost_usd")]:
        with pytest.raises(InvalidRequestError, match=message):
            await run_experiment(qa_dataset(), [agent], **kwargs)
    with pytest.raises(InvalidRequestError, match="two subjects are named 'a'"):
        await run_experiment(qa_dataset(), [agent, AgentSubject(agent)])
    with pytest.raises(InvalidRequestError, match="at least one subject"):
        await run_experiment(qa_dataset(), [])
    with pytest.raises(InvalidRequestError, match="share a name"):
        await run_experiment(qa_dataset(), [agent], evaluators=["contains"])


# ---------------------------------------------------------------------------------- A/B and benchmark


async def test_ab_comparison_names_the_better_subject_with_an_interval_and_the_cost():
    llm = priced_llm(good=FunctionBackend(knows, name="good"))
    baseline = LLMAgent("echo", model="test/echo")
    candidate = LLMAgent("scripted", model="good/m")
    result = await run_experiment(qa_dataset(), [baseline, candidate], llm=llm, repeat=2)
    comparison = compare(result, "echo", "scripted")
    score = comparison.metric("score")
    assert (score.n, score.wins, score.losses, score.ties) == (len(QUESTIONS), len(QUESTIONS), 0, 0)
    assert score.difference == pytest.approx(1.0) and score.ci_low > 0 and comparison.winner == "scripted"
    assert "scripted is better than echo" in comparison.verdict
    cost = comparison.metric("cost_usd")
    assert cost.mean_a == 0 and cost.mean_b > 0 and cost.lower_is_better and cost.losses == len(QUESTIONS)
    # The same subject under two names: no winner, the interval holds 0.
    same = await run_experiment(qa_dataset(), [candidate, AgentSubject(candidate, "copy")], llm=llm)
    tie = compare(same, "scripted", "copy")
    assert tie.winner is None and tie.metric("score").ties == len(QUESTIONS)
    assert "no clear winner" in tie.verdict
    with pytest.raises(InvalidRequestError, match="not a subject"):
        compare(result, "echo", "nobody")
    await llm.aclose()


def test_the_bootstrap_interval_holds_the_mean_and_narrows_with_more_cases():
    noisy = [0.1, -0.2, 0.3, 0.0, 0.25, -0.05, 0.15, 0.2] * 4
    low, high = bootstrap_interval(noisy, seed=1)
    mean = sum(noisy) / len(noisy)
    assert low < mean < high
    wide_low, wide_high = bootstrap_interval(noisy[:8], seed=1)
    assert (high - low) < (wide_high - wide_low)
    assert bootstrap_interval(noisy, seed=1) == (low, high)  # seeded: reproducible


async def test_the_backend_benchmark_finds_the_pareto_front_and_recommends_the_cheapest_good_enough():
    def sometimes(request: Request) -> str:  # right on all but one question
        return "no idea" if "Hamlet" in last_user_text(request) else knows(request)

    llm = priced_llm(good=FunctionBackend(knows, name="good"), cheap=FunctionBackend(sometimes, name="cheap"),
                     mid=FunctionBackend(knows, name="mid"), pricey=FunctionBackend(knows, name="pricey"))
    result = await run_experiment(qa_dataset(), ["good/m", "cheap/m", "mid/m", "pricey/m"], llm=llm)
    strict = benchmark_report(result, tolerance=0.0)
    assert strict.recommended == "mid/m"  # the cheapest of those with the best score
    # mid/m is as good and cheaper: pricey/m stays on the front only while it answered faster than every
    # subject as good and cheaper (latency, the third axis, is measured, so either may be faster).
    rows = {r.subject: r for r in strict.rows}
    pricey = rows["pricey/m"]
    better_buys = [r for r in strict.rows if r.score >= pricey.score and r.cost_per_case_usd < pricey.cost_per_case_usd]
    assert rows["mid/m"] in better_buys
    assert pricey.pareto == all(r.latency_p50_ms > pricey.latency_p50_ms for r in better_buys)
    assert {r.subject for r in strict.rows if r.pareto} >= {"mid/m", "cheap/m"}
    loose = benchmark_report(result, tolerance=0.2)
    assert loose.recommended == "cheap/m" and "less cost per case" in loose.reason
    assert loose.rows[0].score == 1.0 and loose.rows[-1].subject == "cheap/m"
    await llm.aclose()


async def test_exports_json_and_csv_with_formula_cells_neutralized():
    llm = priced_llm(good=FunctionBackend(lambda r: "=HYPERLINK(\"x\")", name="good"))
    result = await run_experiment(Dataset.of("d", [{"id": "-1", "input": "q"}], evaluators=["contains"]),
                                  ["good/m"], llm=llm, evaluators=[{"type": "latency", "max_ms": 60000}])
    data = json.loads(to_json(result))
    assert data["results"][0]["scores"]["latency"]["value"] == 1.0 and data["dataset_version"] == result.dataset_version
    rows = list(csv.DictReader(io.StringIO(to_csv(result))))
    assert rows[0]["text"].startswith("'=") and rows[0]["case_id"] == "'-1"
    assert rows[0]["latency"] == "1.0" and rows[0]["contains"] == "0.0" and rows[0]["subject"] == "good/m"
    await llm.aclose()
