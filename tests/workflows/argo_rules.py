"""Rules Argo's validator and controller enforce that no JSON schema can express.

Written from argo-workflows' `workflow/validate/validate.go` (`validateNonLeaf`, `validateLeaf`,
`resolveAllVariables`, `validateSteps`/`addOutputsToScope`/`addItemsToScope`, the resource
checks, `CronWorkflow`, the onExit handling), `workflow/controller/steps.go` (`shouldExecute`,
which evaluates `when` with govaluate) and robfig/cron v3's `ParseStandard` (what `CronWorkflow`
parses every schedule with). Each function takes a WorkflowTemplate or Workflow, or a
CronWorkflow's :func:`tests.workflows.argo_local.workflow_view`, and returns the violations it
finds, as text naming the rule; nothing here is Argo's code.

What the `when` checker covers, honestly: govaluate's grammar for what a `when` of ours can
contain after Argo substituted its `{{...}}` placeholders — bare words and numbers, quoted
strings, parentheses, `== != < <= > >= =~ !~`, `&& || !`. Argo turns every bare word into a
string (so `Failed != Succeeded` compares two strings), as `shouldExecute` does. Anything else
(`in`, arithmetic, ternaries, functions, `[escaped]` names) is reported as unsupported rather
than guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

# validate.go: a template "kind" is whichever of these fields it sets.
LEAF_TYPES = ("container", "containerSet", "script", "resource", "data", "http", "plugin")
NON_LEAF_TYPES = ("steps", "dag")
OTHER_TYPES = ("suspend",)
# Fields Argo accepts only on leaf templates. activeDeadlineSeconds: validateNonLeaf.
# timeout / pendingTimeout: validateTemplate. retryStrategy: refused on steps/dag by releases
# before argoproj/argo-workflows#1892, so kept off them here too.
LEAF_ONLY_FIELDS = ("activeDeadlineSeconds", "timeout", "pendingTimeout", "retryStrategy")

# common.GlobalVarValidWorkflowVariablePrefix: only placeholders with these prefixes are checked
# (anything else is left for other templating).
CHECKED_PREFIXES = ("item.", "steps.", "inputs.", "outputs.", "pod.", "workflow.", "tasks.")
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
# Globals every workflow has (validate.go, ValidateWorkflow's globalParams), plus those resolved
# at run time that resolveAllVariables lets through by prefix.
GLOBALS = {
    "workflow.name", "workflow.namespace", "workflow.mainEntrypoint", "workflow.serviceAccountName",
    "workflow.uid", "workflow.status", "workflow.annotations", "workflow.annotations.json",
    "workflow.labels", "workflow.labels.json",
}  # fmt: skip
RUNTIME_PREFIXES = (
    "workflow.creationTimestamp", "workflow.scheduledTime", "workflow.duration", "tasks.name",
    "steps.name", "node.name", "outputs.",
)  # fmt: skip
# What {{workflow.status}} can be when the exit handler runs.
EXIT_STATUSES = ("Succeeded", "Failed", "Error")


def template_type(tmpl: dict[str, Any]) -> str:
    kinds = [k for k in LEAF_TYPES + NON_LEAF_TYPES + OTHER_TYPES if k in tmpl]
    assert len(kinds) == 1, f"template {tmpl.get('name')} has types {kinds}"
    return kinds[0]


def leaf_only_fields(wt: dict[str, Any]) -> list[str]:
    """activeDeadlineSeconds (and timeout, pendingTimeout, retryStrategy) only on leaf templates."""
    out = []
    for tmpl in wt["spec"]["templates"]:
        if template_type(tmpl) in LEAF_TYPES:
            continue
        for f in LEAF_ONLY_FIELDS:
            if f in tmpl:
                out.append(f"templates.{tmpl['name']}.{f} is only valid for leaf templates")
    return out


def _placeholders(value: Any) -> set[str]:
    return set(PLACEHOLDER.findall(yaml.safe_dump(value)))


def unresolved_placeholders(wt: dict[str, Any]) -> list[str]:
    """Every {{workflow.parameters.X}} and {{inputs.parameters.X}} (and other checked variable)
    resolves in its template's scope, as resolveAllVariables requires."""
    spec = wt["spec"]
    scope = set(GLOBALS)
    scope |= {f"workflow.parameters.{p['name']}" for p in spec.get("arguments", {}).get("parameters", [])}
    if spec.get("arguments", {}).get("parameters"):
        scope |= {"workflow.parameters", "workflow.parameters.json"}
    meta = wt.get("metadata", {})
    scope |= {f"workflow.annotations.{k}" for k in meta.get("annotations") or {}}
    scope |= {f"workflow.labels.{k}" for k in meta.get("labels") or {}}
    if spec.get("onExit"):
        scope.add("workflow.failures")
    out = []
    outside = {k: v for k, v in spec.items() if k != "templates"}
    for tag in sorted(_placeholders(outside)):
        if tag.startswith(CHECKED_PREFIXES) and tag not in scope and not tag.startswith(RUNTIME_PREFIXES):
            out.append(f"spec: failed to resolve {{{{{tag}}}}}")
    by_name = {t["name"]: t for t in spec["templates"]}
    for tmpl in spec["templates"]:
        local = set(scope)
        local |= {f"inputs.parameters.{p['name']}" for p in (tmpl.get("inputs") or {}).get("parameters", [])}
        if template_type(tmpl) in ("container", "containerSet", "script", "resource", "data"):
            local.add("pod.name")
        if template_type(tmpl) == "dag":
            local |= {f"tasks.{t['name']}.status" for t in tmpl["dag"]["tasks"]}
        if template_type(tmpl) == "steps":
            out += _unresolved_in_steps(tmpl, local, by_name)
            tmpl = {k: v for k, v in tmpl.items() if k != "steps"}
        for tag in sorted(_placeholders(tmpl)):
            if _unresolved(tag, local):
                out.append(f"templates.{tmpl['name']}: failed to resolve {{{{{tag}}}}}")
    return out


def _unresolved(tag: str, scope: set[str]) -> bool:
    checked = tag.startswith(CHECKED_PREFIXES) and not tag.startswith(RUNTIME_PREFIXES)
    return checked and tag not in scope


def _outputs(step: str, tmpl: dict[str, Any] | None) -> set[str]:
    """addOutputsToScope: what a later step may read of an earlier one."""
    out = {f"steps.{step}.{k}" for k in ("id", "startedAt", "finishedAt", "hostNodeName")}
    if tmpl is None:
        return out
    if template_type(tmpl) in ("container", "containerSet", "script", "data", "http", "plugin"):
        out |= {f"steps.{step}.outputs.result", f"steps.{step}.exitCode"}
    for p in (tmpl.get("outputs") or {}).get("parameters", []):
        out.add(f"steps.{step}.outputs.parameters.{p['name']}")
    return out


def _unresolved_in_steps(
    tmpl: dict[str, Any], scope: set[str], by_name: dict[str, dict[str, Any]]
) -> list[str]:
    """validateSteps: a step sees the status of its own group's steps and the outputs of earlier
    groups' (Argo adds each step's outputs right after it; a step reading a step of its own
    group passes the validator and fails at run time, so that is refused here too), and
    ``item``/``item.*`` when it loops over ``withParam`` (``withItems``: the items' keys)."""
    out = []
    scope = set(scope)
    for group in tmpl["steps"]:
        scope |= {f"steps.{s['name']}.status" for s in group}
        for step in group:
            local = set(scope)
            if step.get("withParam"):
                local.add("item")
            for item in step.get("withItems") or []:
                local |= {f"item.{k}" for k in item} if isinstance(item, dict) else {"item"}
            for tag in sorted(_placeholders(step)):
                item_ref = tag == "item" or tag.startswith("item.")
                if item_ref and step.get("withParam"):
                    continue
                if item_ref and tag not in local or not item_ref and _unresolved(tag, local):
                    out.append(f"templates.{tmpl['name']}.{step['name']}: failed to resolve {{{{{tag}}}}}")
        for step in group:
            scope |= _outputs(step["name"], by_name.get(step.get("template", "")))
    return out


def undefined_templates(wt: dict[str, Any]) -> list[str]:
    """entrypoint, onExit and every step/task's template name exist (validateTemplateHolder)."""
    spec = wt["spec"]
    names = {t["name"] for t in spec["templates"]}
    out = []
    for field in ("entrypoint", "onExit"):
        if field in spec and spec[field] not in names:
            out.append(f"spec.{field}: template name '{spec[field]}' undefined")
    for tmpl in spec["templates"]:
        refs = []
        if "steps" in tmpl:
            refs = [s for group in tmpl["steps"] for s in group]
        elif "dag" in tmpl:
            refs = tmpl["dag"]["tasks"]
        for ref in refs:
            if ref.get("template") not in names:
                out.append(
                    f"templates.{tmpl['name']}.{ref['name']}: template name '{ref.get('template')}' undefined"
                )
    return out


# --- `when`: govaluate, the subset we use ------------------------------------------------


class WhenError(ValueError):
    pass


@dataclass(frozen=True)
class _Tok:
    kind: str  # "str", "num", "op", "(", ")"
    value: Any


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>\d+(?:\.\d+)?)(?![\w.])
      | "(?P<dq>[^"]*)" | '(?P<sq>[^']*)'
      | (?P<op>==|!=|<=|>=|=~|!~|&&|\|\||<|>|!)
      | (?P<lp>\() | (?P<rp>\))
      | (?P<word>[A-Za-z_][\w.]*)
      | (?P<bad>\S)
    )""",
    re.X,
)
_BOOL_WORDS = {"true": True, "false": False}


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None
        pos = m.end()
        if m.group("num") is not None:
            out.append(_Tok("num", float(m.group("num"))))
        elif m.group("dq") is not None or m.group("sq") is not None:
            out.append(_Tok("str", m.group("dq") if m.group("dq") is not None else m.group("sq")))
        elif m.group("op"):
            out.append(_Tok("op", m.group("op")))
        elif m.group("lp"):
            out.append(_Tok("(", "("))
        elif m.group("rp"):
            out.append(_Tok(")", ")"))
        elif m.group("word"):
            word = m.group("word")
            if word in _BOOL_WORDS:
                out.append(_Tok("bool", _BOOL_WORDS[word]))
            elif word.upper() == "IN":
                raise WhenError(f"operator {word!r} is beyond this checker")
            else:
                # govaluate reads a bare word as a variable; Argo turns it into a string.
                out.append(_Tok("str", word))
        elif m.group("bad"):
            raise WhenError(f"invalid token {m.group('bad')!r} in {text!r}")
    return out


class _Parser:
    """or := and ('||' and)* ; and := not ('&&' not)* ; not := '!' not | cmp ;
    cmp := atom (('=='|'!='|'<'|'<='|'>'|'>='|'=~'|'!~') atom)? ; atom := value | '(' or ')'"""

    def __init__(self, tokens: list[_Tok]) -> None:
        self.toks = tokens
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise WhenError("unexpected end of expression")
        self.i += 1
        return tok

    def parse(self) -> Any:
        if not self.toks:
            raise WhenError("empty expression")
        value = self.or_()
        if self.peek() is not None:
            raise WhenError(f"unexpected {self.peek().value!r}")  # type: ignore[union-attr]
        return value

    def or_(self) -> Any:
        left = self.and_()
        while (tok := self.peek()) and tok.kind == "op" and tok.value == "||":
            self.take()
            right = self.and_()
            left = _bool(left) or _bool(right)
        return left

    def and_(self) -> Any:
        left = self.not_()
        while (tok := self.peek()) and tok.kind == "op" and tok.value == "&&":
            self.take()
            right = self.not_()
            left = _bool(left) and _bool(right)
        return left

    def not_(self) -> Any:
        tok = self.peek()
        if tok and tok.kind == "op" and tok.value == "!":
            self.take()
            return not _bool(self.not_())
        return self.cmp()

    def cmp(self) -> Any:
        left = self.atom()
        tok = self.peek()
        if tok and tok.kind == "op" and tok.value in ("==", "!=", "<", "<=", ">", ">=", "=~", "!~"):
            op = self.take().value
            right = self.atom()
            return _compare(left, op, right)
        return left

    def atom(self) -> Any:
        tok = self.take()
        if tok.kind == "(":
            value = self.or_()
            if self.take().kind != ")":
                raise WhenError("unbalanced parentheses")
            return value
        if tok.kind in ("str", "num", "bool"):
            return tok.value
        raise WhenError(f"unexpected {tok.value!r}")


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise WhenError(f"{value!r} is not a boolean")
    return value


def _compare(left: Any, op: str, right: Any) -> bool:
    if op in ("=~", "!~"):
        if not (isinstance(left, str) and isinstance(right, str)):
            raise WhenError(f"regex operator {op} needs strings")
        matched = re.search(right, left) is not None
        return matched if op == "=~" else not matched
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if not (isinstance(left, float) and isinstance(right, float)):
        raise WhenError(f"{op} compares numbers, got {left!r} and {right!r}")
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def evaluate_when(expression: str, values: dict[str, str]) -> bool:
    """Substitute `{{placeholders}}` as Argo does, then evaluate as shouldExecute would."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1).strip()
        if name not in values:
            raise WhenError(f"no value for {{{{{name}}}}}")
        return values[name]

    result = _Parser(_tokens(PLACEHOLDER.sub(sub, expression))).parse()
    if not isinstance(result, bool):
        raise WhenError(f"{expression!r} does not evaluate to a boolean (got {result!r})")
    return result


def when_expressions(wt: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(template, step/task, when) for every conditional step or task."""
    out = []
    for tmpl in wt["spec"]["templates"]:
        refs = []
        if "steps" in tmpl:
            refs = [s for group in tmpl["steps"] for s in group]
        elif "dag" in tmpl:
            refs = tmpl["dag"]["tasks"]
        out += [(tmpl["name"], r["name"], r["when"]) for r in refs if "when" in r]
    return out


def bad_when_expressions(wt: dict[str, Any], values: dict[str, list[str]]) -> list[str]:
    """Every `when` parses and yields a boolean for every value its placeholders can take."""
    import itertools

    out = []
    for tmpl, step, expr in when_expressions(wt):
        names = sorted({m.strip() for m in PLACEHOLDER.findall(expr)})
        missing = [n for n in names if n not in values]
        if missing:
            out.append(f"templates.{tmpl}.{step}.when: no known values for {missing}")
            continue
        for combo in itertools.product(*(values[n] for n in names)):
            try:
                evaluate_when(expr, dict(zip(names, combo, strict=True)))
            except WhenError as exc:
                out.append(
                    f"templates.{tmpl}.{step}.when {expr!r} with {dict(zip(names, combo, strict=True))}: {exc}"
                )
    return out


def retry_expression(expression: str, exit_code: int) -> bool:
    """Evaluate a retryStrategy.expression of the shape we use (expr-lang), for one exit code.

    Covers `asInt(lastRetry.exitCode)`, `lastRetry.status`, comparisons and `&& || !`; a
    misspelt variable (`lastRetry.exitcode`) or function is an error, as it is in expr-lang.
    """
    import ast

    py = expression.replace("&&", " and ").replace("||", " or ")
    py = re.sub(r"!(?!=)", " not ", py)
    tree = ast.parse(py, mode="eval")
    allowed = (
        ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare, ast.Eq,
        ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Call, ast.Name, ast.Attribute, ast.Load,
        ast.Constant,
    )  # fmt: skip
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            raise ValueError(f"{type(node).__name__} in {expression!r} is beyond this checker")

    class LastRetry:
        exitCode = str(exit_code)  # noqa: N815 - Argo's name
        status = "Failed"
        duration = "10"
        message = ""

    env = {"asInt": int, "asFloat": float, "lastRetry": LastRetry}
    result = eval(compile(tree, "<retry expression>", "eval"), {"__builtins__": {}}, env)  # noqa: S307
    if not isinstance(result, bool):
        raise ValueError(f"{expression!r} does not evaluate to a boolean")
    return result


def go_duration_seconds(text: str) -> float:
    """A Go duration string ("10s", "1h30m", "7200s") or plain seconds, as Argo parses maxDuration."""
    if re.fullmatch(r"\d+", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s|ms)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    unit = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * unit[u] for n, u in parts)


# --- steps: names, loops ------------------------------------------------------------------

FIELD_NAME = re.compile(r"[a-zA-Z0-9][-a-zA-Z0-9]*")  # validate.go workflowFieldNameFmt


def step_violations(wf: dict[str, Any]) -> list[str]:
    """validateSteps: every step has a valid name (letters, digits, '-'; at most 128), unique in
    its template; at most one of withItems, withParam, withSequence (addItemsToScope); a
    withParam is a placeholder or a JSON list."""
    import json

    out = []
    for tmpl in wf["spec"]["templates"]:
        if "steps" not in tmpl:
            continue
        seen: set[str] = set()
        for group in tmpl["steps"]:
            for step in group:
                name = step.get("name", "")
                where = f"templates.{tmpl['name']}.steps.{name}"
                if not FIELD_NAME.fullmatch(name) or len(name) > 128:
                    out.append(f"{where}: name '{name}' is invalid")
                if name in seen:
                    out.append(f"{where}: name '{name}' is not unique")
                seen.add(name)
                loops = [k for k in ("withItems", "withParam", "withSequence") if step.get(k)]
                if len(loops) > 1:
                    out.append(f"{where}: only one of withItems, withParam, withSequence can be specified")
                param = step.get("withParam")
                if param and not PLACEHOLDER.fullmatch(param.strip()):
                    try:
                        ok = isinstance(json.loads(param), list)
                    except ValueError:
                        ok = False
                    if not ok:
                        out.append(f"{where}: withParam {param!r} is neither a placeholder nor a JSON list")
    return out


# --- resource templates -------------------------------------------------------------------

RESOURCE_ACTIONS = ("get", "create", "apply", "delete", "replace", "patch")


def resource_violations(wf: dict[str, Any]) -> list[str]:
    """validateLeaf for resource templates: a known action; a manifest for every action but get
    and delete, that parses as YAML once `{{=expr}}` expressions are replaced."""
    out = []
    for tmpl in wf["spec"]["templates"]:
        res = tmpl.get("resource")
        if res is None:
            continue
        where = f"templates.{tmpl['name']}.resource"
        if res.get("action") not in RESOURCE_ACTIONS:
            out.append(f"{where}.action must be one of: {', '.join(RESOURCE_ACTIONS)}")
        if res.get("action") in ("get", "delete"):
            continue
        manifest = res.get("manifest", "")
        if not manifest and not res.get("manifestFrom"):
            out.append(f"either {where}.manifest or {where}.manifestFrom must be specified")
            continue
        try:
            yaml.safe_load(re.sub(r"\{\{\s*=\s*(.+?)\s*\}\}", "placeholder", manifest))
        except yaml.YAMLError:
            out.append(f"{where}.manifest must be a valid yaml")
    return out


# --- object names -------------------------------------------------------------------------


def name_violations(obj: dict[str, Any]) -> list[str]:
    """WorkflowTemplates and Workflows: 63 characters at most (a label value); CronWorkflows: 52
    (the controller appends `-<unix time>` to name the workflows they create)."""
    limit = 52 if obj["kind"] == "CronWorkflow" else 63
    name = obj["metadata"]["name"]
    if len(name) > limit:
        return [f"{obj['kind']} name {name!r} must not be more than {limit} characters long"]
    return []


# --- CronWorkflows: validate.CronWorkflow and robfig/cron v3 ParseStandard ------------------

CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace", "")
_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# The CRD's own pattern for every schedule (Argo >= 3.6, cron_workflow_types.go).
SCHEDULE_PATTERN = re.compile(
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every\s+([0-9]+(ns|us|µs|ms|s|m|h))+"
    r"|([A-Za-z0-9*,/?-]+\s+){4}[A-Za-z0-9*,/?-]+)$"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (name, min, max, names) of ParseStandard's five fields.
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)


def _go_parse_duration(text: str) -> None:
    """Go's time.ParseDuration: signed sequence of decimal numbers, each with a unit."""
    unit = r"(\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)"
    if text != "0" and not re.fullmatch(rf"[-+]?({unit})+", text):
        raise ValueError(f"time: invalid duration {text!r}")


def _cron_int(text: str, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f"failed to parse int from {text}")
    value = int(text)
    if value < 0:
        raise ValueError(f"negative number ({value}) not allowed: {text}")
    return value


def _cron_range(expr: str, low: int, high: int, names: dict[str, int]) -> None:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
        start, end = low, high
    else:
        start = _cron_int(low_and_high[0], names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _cron_int(low_and_high[1], names)
        else:
            raise ValueError(f"too many hyphens: {expr}")
    if len(range_and_step) == 2:
        step = _cron_int(range_and_step[1], {})
        if len(low_and_high) == 1:
            end = high  # "N/step" means "N-max/step"
        if step == 0:
            raise ValueError(f"step of range should be a positive number: {expr}")
    elif len(range_and_step) > 2:
        raise ValueError(f"too many slashes: {expr}")
    if start < low:
        raise ValueError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise ValueError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise ValueError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")


def parse_schedule(spec: str) -> None:
    """Raise ValueError where robfig/cron v3's ParseStandard would return an error: five fields
    (minute hour day-of-month month day-of-week) of comma-separated ranges (`*`, `?`, `N`,
    `N-M`, each with an optional `/step`; month and weekday names), a descriptor, or
    `@every <Go duration>`; optionally after `CRON_TZ=<zone>` or `TZ=<zone>`."""
    if not spec:
        raise ValueError("empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        import zoneinfo

        zone, _, spec = spec.partition("=")[2].partition(" ")
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"provided bad location {zone}: {exc}") from None
        spec = spec.strip()
    if spec.startswith("@"):
        if spec in _DESCRIPTORS:
            return
        if spec.startswith("@every "):
            _go_parse_duration(spec.removeprefix("@every ").strip())
            return
        raise ValueError(f"unrecognized descriptor: {spec}")
    fields = spec.split()
    if len(fields) != len(_FIELDS):
        raise ValueError(f"expected exactly {len(_FIELDS)} fields, found {len(fields)}: {spec}")
    for text, (_, low, high, names) in zip(fields, _FIELDS, strict=True):
        for expr in filter(None, text.split(",")):
            _cron_range(expr, low, high, names)


def cron_violations(cron: dict[str, Any]) -> list[str]:
    """validate.CronWorkflow, before the workflow spec is validated as a Workflow's."""
    import zoneinfo

    spec = cron["spec"]
    out = name_violations(cron)
    schedules = list(spec.get("schedules") or []) + ([spec["schedule"]] if spec.get("schedule") else [])
    if not schedules:
        out.append("cron workflow must have at least one schedule")
    if spec.get("schedule"):
        out.append("spec.schedule is gone in Argo 4 (only spec.schedules remains): use schedules")
    for schedule in schedules:
        if not SCHEDULE_PATTERN.fullmatch(schedule):
            out.append(f"cron schedule {schedule} does not match the CRD's pattern")
        try:
            parse_schedule(schedule)
        except ValueError as exc:
            out.append(f"cron schedule {schedule} is malformed: {exc}")
    if spec.get("timezone"):
        try:
            zoneinfo.ZoneInfo(spec["timezone"])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            out.append(f"invalid timezone {spec['timezone']!r}")
    if spec.get("concurrencyPolicy", "") not in CONCURRENCY_POLICIES:
        out.append(f"'{spec['concurrencyPolicy']}' is not a valid concurrencyPolicy")
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and int(deadline) < 0:
        out.append("startingDeadlineSeconds must be positive")
    return out
