"""The Triton model configuration: one object, Triton's own protobuf schema.

Where the configuration comes from, lowest to highest precedence:

1. **Defaults derived from the ONNX signature**: inputs/outputs, ``max_batch_size`` when every
   tensor has a dynamic first dim. No ``instance_group``: Triton then puts one instance on each
   GPU where there are GPUs, else on the CPU.
2. **The artefact's own** ``config.pbtxt`` (a Triton model directory logged to MLflow, the
   layout of NVIDIA's plugin), **limited to what describes the model**: ``max_batch_size``,
   ``dynamic_batching``, ``sequence_batching`` and the tensors' ``dims``/``reshape``/``optional``/
   ``allow_ragged_batch`` (:data:`ARTIFACT_FIELDS`). Whoever can register a model version chooses
   *what* is served, never *how Triton runs it*: a native library (``model_operations``), a warmup
   file, instance counts, parameters, accelerators, repository agents are the operator's. Any other
   field is refused (:class:`ArtifactFieldRefused`, exit 2) unless the operator widened the list
   (``--artifact-config-fields``); ``model_operations`` and ``model_repository_agents`` never
   come from an artefact, and a file the artefact names must be a plain name inside the model.
3. **The operator's template** (``--model-config FILE`` or ``$TRITONOPS_MODEL_CONFIG_DIR/<model>.pbtxt``).
4. **Fields tritonops owns**, always: ``name``, ``backend`` (``platform: "onnxruntime_onnx"`` is
   accepted as its synonym), ``default_model_filename``, ``version_policy`` (pinned to the committed
   version), and the tensors' names and datatypes (from the ONNX file).

A source replaces every top-level field it sets (an ``instance_group`` in the template replaces
the artefact's, it does not add to it); ``input``/``output`` entries are merged per tensor name
(a source may set ``dims`` compatible with the ONNX file, ``reshape``, and the other per-tensor
options). From the operator's template everything else passes through untouched: instance
groups, batching, optimization (execution accelerators), warmup, parameters, response cache, ...

One ``config.pbtxt`` sits at the model root and serves every version, so a version switch can
never pick up a mismatched config. Its ``version_policy`` is pinned to the committed version: a
Triton that restarts (or that loads the model for the first time) serves exactly what
``current.json`` says, never the highest version directory that happens to exist.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as pb

from tritonops.core.signature import DYNAMIC, Array, Signature, TensorSpec
from tritonops.core.verdict import interface_changes as tensor_changes
from tritonops.errors import ArtifactFieldRefused, ArtifactInvalid, ConfigInvalid, TritonOpsError

ModelConfig = pb.ModelConfig

DEFAULT_MAX_BATCH_SIZE = 64
BACKEND = "onnxruntime"
PLATFORM_SYNONYM = "onnxruntime_onnx"
MODEL_FILENAME = "model.onnx"
_HEADER = (
    "# Written by tritonops. The version policy is pinned to the committed version;\n"
    "# change production with `tritonops deploy` or `tritonops rollback`, not by hand.\n"
)
# proto3 scalars have no presence: an explicit `max_batch_size: 0` must be seen in the text.
_MAX_BATCH_RE = re.compile(r"(^|[\s{;,])max_batch_size\s*:", re.M)


# What an artefact's own config may set: what describes the model, nothing about how Triton runs
# it. Top-level fields, then per-tensor fields (name and data_type are checked against the model).
ARTIFACT_FIELDS = frozenset({"input", "output", "max_batch_size", "dynamic_batching", "sequence_batching"})
ARTIFACT_TENSOR_FIELDS = frozenset({"name", "data_type", "dims", "reshape", "optional", "allow_ragged_batch"})
# Never from an artefact, whatever the operator widens: a native library Triton dlopens in every
# replica, and agents that run on the repository.
NEVER_FROM_ARTIFACT = frozenset({"model_operations", "model_repository_agents"})


@dataclass(frozen=True)
class ArtifactFields:
    """Which fields an artefact's config may set: :data:`ARTIFACT_FIELDS` plus what the operator
    widened (``--artifact-config-fields``: top-level names, or ``input.<f>``/``output.<f>``)."""

    top: frozenset[str] = ARTIFACT_FIELDS
    tensor: frozenset[str] = ARTIFACT_TENSOR_FIELDS

    @classmethod
    def widened(cls, names: Iterable[str]) -> ArtifactFields:
        """The default list plus ``names``; a name Triton's schema lacks, a field tritonops owns or
        one never taken from an artefact is refused (ConfigInvalid, exit 2)."""
        top, tensor = set(ARTIFACT_FIELDS), set(ARTIFACT_TENSOR_FIELDS)
        model_fields = pb.ModelConfig.DESCRIPTOR.fields_by_name
        tensor_fields = set(pb.ModelInput.DESCRIPTOR.fields_by_name) | set(
            pb.ModelOutput.DESCRIPTOR.fields_by_name
        )
        for raw in names:
            name = raw.strip()
            if not name:
                continue
            kind, _, sub = name.partition(".")
            if sub and kind in ("input", "output") and sub in tensor_fields:
                tensor.add(sub)
            elif name in _OWNED:
                raise ConfigInvalid(
                    f"--artifact-config-fields: {name!r} is owned by tritonops, never the artefact's"
                )
            elif name in NEVER_FROM_ARTIFACT:
                raise ConfigInvalid(
                    f"--artifact-config-fields: {name!r} is never taken from an artefact; put it in the "
                    "operator's template (--model-config / TRITONOPS_MODEL_CONFIG_DIR)"
                )
            elif not sub and name in model_fields:
                top.add(name)
            else:
                raise ConfigInvalid(
                    f"--artifact-config-fields: {name!r} is not a field of Triton's ModelConfig "
                    "(top-level names, or input.<field> / output.<field>)"
                )
        return cls(frozenset(top), frozenset(tensor))


@dataclass(frozen=True)
class ConfigSource:
    """One source of configuration: its text and where it came from (for messages)."""

    text: str
    where: str
    operator: bool = True  # the operator's template (bad -> exit 2) or the artefact's (bad -> exit 3)
    # For an artefact's config: the fields it may set (anything else: ArtifactFieldRefused).
    allowed: ArtifactFields = ArtifactFields()

    @property
    def error(self) -> type[TritonOpsError]:
        return ConfigInvalid if self.operator else ArtifactInvalid

    def parse(self) -> tuple[pb.ModelConfig, frozenset[str]]:
        """The message and the names of the top-level fields it sets; a bad field is refused."""
        message = pb.ModelConfig()
        try:
            text_format.Parse(self.text, message)
        except text_format.ParseError as exc:
            line, column = exc.GetLine(), exc.GetColumn()
            detail = str(exc).split(" : ", 1)[-1] if line else str(exc)
            where = f"{self.where}:{line}:{column}" if line else self.where
            raise self.error(f"{where}: {detail} (Triton's ModelConfig schema)") from exc
        fields = {f.name for f, _ in message.ListFields()}
        if _MAX_BATCH_RE.search(_strip_comments(self.text)):
            fields.add("max_batch_size")
        return message, frozenset(fields)


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def parse_pbtxt(text: str, where: str) -> pb.ModelConfig:
    """Parse a ``config.pbtxt`` tritonops wrote (or a template) with Triton's schema."""
    return ConfigSource(text, where).parse()[0]


# ----------------------------------------------------------------- building
def derive_defaults(
    name: str, signature: Signature, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
) -> pb.ModelConfig:
    """What the ONNX file alone says: tensors, and batching when every first dim is dynamic."""
    config = pb.ModelConfig(name=name)
    config.max_batch_size = max_batch_size if signature.batchable and max_batch_size > 0 else 0
    for spec in signature.inputs:
        _default_tensor(config.input.add(), spec, config.max_batch_size)
    for spec in signature.outputs:
        _default_tensor(config.output.add(), spec, config.max_batch_size)
    return config


def _default_tensor(tensor: Any, spec: TensorSpec, max_batch_size: int) -> None:
    tensor.name = spec.name
    tensor.data_type = pb.DataType.Value(_type_name(spec.datatype))
    dims = spec.dims[1:] if max_batch_size > 0 else spec.dims
    if max_batch_size > 0 and not dims:
        # A batched tensor whose only dim is the batch: Triton wants dims [1] (it refuses
        # "must specify 'dims'") and the model sees the batch alone.
        tensor.dims.append(1)
        tensor.reshape.SetInParent()
    else:
        tensor.dims.extend(dims)


def _type_name(datatype: str) -> str:
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def effective_config(
    name: str,
    signature: Signature,
    sources: Sequence[ConfigSource] = (),
    default_max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> pb.ModelConfig:
    """The configuration Triton gets for ``signature``: defaults, then each source, then ours.

    Raises the source's error (ConfigInvalid for the operator's template, ArtifactInvalid for
    the artefact's own config) naming the file and the field or tensor that is wrong.
    """
    config = derive_defaults(name, signature, default_max_batch_size)
    for source in sources:
        layer, fields = source.parse()
        _check_owned(layer, fields, name, source)
        if not source.operator:
            _check_artifact_fields(layer, fields, source)
        batching_before = config.max_batch_size > 0
        for field in sorted(fields - {"input", "output", *_OWNED}):
            config.ClearField(field)
            if field == "max_batch_size":
                config.max_batch_size = layer.max_batch_size
            else:
                _copy_field(layer, config, field)
        if (config.max_batch_size > 0) != batching_before:
            _rebatch(config, signature, source)
        _merge_tensors(config, layer, signature, source)
    config.name = name
    config.backend = BACKEND
    config.ClearField("platform")
    config.default_model_filename = MODEL_FILENAME
    config.ClearField("version_policy")
    return config


_OWNED = ("name", "platform", "backend", "default_model_filename", "version_policy")


def _copy_field(src: pb.ModelConfig, dst: pb.ModelConfig, field: str) -> None:
    descriptor = pb.ModelConfig.DESCRIPTOR.fields_by_name[field]
    value = getattr(src, field)
    if descriptor.message_type is None:
        setattr(dst, field, value)
    elif descriptor.is_repeated:
        target = getattr(dst, field)
        if descriptor.message_type.GetOptions().map_entry:
            for key in value:
                target[key].CopyFrom(value[key])
        else:
            target.extend(value)
    else:
        getattr(dst, field).CopyFrom(value)


def _check_owned(layer: pb.ModelConfig, fields: frozenset[str], name: str, source: ConfigSource) -> None:
    """Owned fields may repeat our value; anything else would be silently overridden: refuse it.

    An artefact's config (written for another repository, e.g. NVIDIA's plugin) often names
    the model or its platform differently: there, owned fields are ignored, not refused.
    """
    if not source.operator:
        return
    problems = []
    if "name" in fields and layer.name != name:
        problems.append(f"name {layer.name!r} (the model is {name!r})")
    if "backend" in fields and layer.backend != BACKEND:
        problems.append(f"backend {layer.backend!r} (tritonops deploys ONNX with {BACKEND!r})")
    if "platform" in fields and layer.platform != PLATFORM_SYNONYM:
        problems.append(f"platform {layer.platform!r} (only {PLATFORM_SYNONYM!r} is accepted)")
    if "default_model_filename" in fields and layer.default_model_filename != MODEL_FILENAME:
        problems.append(f"default_model_filename {layer.default_model_filename!r}")
    if "version_policy" in fields:
        problems.append("version_policy (tritonops pins it to the committed version)")
    if problems:
        raise source.error(f"{source.where}: fields tritonops owns: {'; '.join(problems)}")


def _check_artifact_fields(layer: pb.ModelConfig, fields: frozenset[str], source: ConfigSource) -> None:
    """An artefact's config describes the model; how Triton runs it is the operator's.

    Refuses (exit 2) every field outside ``source.allowed`` and every file name that is not a
    plain name inside the model directory (Triton joins these to the model's path).
    """
    allowed = source.allowed
    refused = sorted(f for f in fields - set(_OWNED) if f not in allowed.top or f in NEVER_FROM_ARTIFACT)
    for kind, tensors in (("input", layer.input), ("output", layer.output)):
        for tensor in tensors:
            refused += [
                f"{kind} {tensor.name!r} {f.name}"
                for f, _ in tensor.ListFields()
                if f.name not in allowed.tensor
            ]
    if refused:
        raise ArtifactFieldRefused(
            f"{source.where} sets {', '.join(refused)}: an artefact may only describe the model "
            f"({', '.join(sorted(allowed.top))}; tensors' {', '.join(sorted(allowed.tensor - {'name', 'data_type'}))}). "
            "How Triton runs it belongs in the operator's template (--model-config / "
            "TRITONOPS_MODEL_CONFIG_DIR/<model>.pbtxt); --artifact-config-fields widens the list"
        )
    for path, value in _file_names(layer):
        if not _plain_name(value):
            raise ArtifactFieldRefused(
                f"{source.where}: {path} {value!r} is not a plain file name inside the model directory"
            )


def _file_names(layer: pb.ModelConfig) -> Iterator[tuple[str, str]]:
    """Every file name a config asks Triton to open relative to the model directory."""
    for tensor in layer.output:
        if tensor.label_filename:
            yield f"output {tensor.name!r} label_filename", tensor.label_filename
    for warmup in layer.model_warmup:
        for key, value in warmup.inputs.items():
            if value.input_data_file:
                yield f"model_warmup {warmup.name!r} input {key!r} input_data_file", value.input_data_file
    for state in layer.sequence_batching.state:
        for initial in state.initial_state:
            if initial.data_file:
                yield (
                    f"sequence_batching state {state.input_name!r} initial_state data_file",
                    initial.data_file,
                )
    for filename in layer.cc_model_filenames.values():
        yield "cc_model_filenames", filename


def _plain_name(value: str) -> bool:
    return (
        bool(value)
        and "/" not in value
        and "\\" not in value
        and value not in (".", "..")
        and "\x00" not in value
    )


def _rebatch(config: pb.ModelConfig, signature: Signature, source: ConfigSource) -> None:
    """A source switched batching on or off: tensors' dims follow (the batch dim in or out)."""
    if config.max_batch_size > 0 and not signature.batchable:
        fixed = [t.name for t in signature.inputs + signature.outputs if not t.dims or t.dims[0] != DYNAMIC]
        raise source.error(
            f"{source.where}: max_batch_size {config.max_batch_size} needs a dynamic first dim on "
            f"every tensor; the ONNX file fixes it on {fixed}"
        )
    for repeated, specs in ((config.input, signature.inputs), (config.output, signature.outputs)):
        del repeated[:]
        for spec in specs:
            _default_tensor(repeated.add(), spec, config.max_batch_size)


def _merge_tensors(
    config: pb.ModelConfig, layer: pb.ModelConfig, signature: Signature, source: ConfigSource
) -> None:
    for kind, ours, theirs, specs in (
        ("input", config.input, layer.input, signature.inputs),
        ("output", config.output, layer.output, signature.outputs),
    ):
        by_name = {t.name: t for t in ours}
        spec_by_name = {s.name: s for s in specs}
        for tensor in theirs:
            if tensor.name not in by_name:
                raise source.error(
                    f"{source.where}: {kind} {tensor.name!r} is not in the ONNX file "
                    f"(its {kind}s: {sorted(by_name)})"
                )
            target, spec = by_name[tensor.name], spec_by_name[tensor.name]
            if tensor.data_type and tensor.data_type != target.data_type:
                raise source.error(
                    f"{source.where}: {kind} {tensor.name!r} data_type "
                    f"{pb.DataType.Name(tensor.data_type)}, the ONNX file has "
                    f"{pb.DataType.Name(target.data_type)}"
                )
            merged = type(target)()
            merged.CopyFrom(tensor)
            merged.data_type = target.data_type
            if not tensor.dims:
                merged.dims.extend(target.dims)
                if target.HasField("reshape") and not tensor.HasField("reshape"):
                    merged.reshape.CopyFrom(target.reshape)
            problem = _shape_problem(spec, merged, config.max_batch_size)
            if problem:
                raise source.error(f"{source.where}: {kind} {tensor.name!r}: {problem}")
            target.CopyFrom(merged)


def _shape_problem(spec: TensorSpec, tensor: Any, max_batch_size: int) -> str | None:
    """Why a tensor's dims/reshape contradict the ONNX file, or None.

    Triton sends the model ``reshape.shape`` when there is one, else ``dims``: that shape
    must fit the graph's (same rank; equal wherever both are fixed). ``dims`` (what clients
    send) must then hold the same number of elements.
    """
    graph = list(spec.dims[1:] if max_batch_size > 0 else spec.dims)
    dims = list(tensor.dims)
    model_side = list(tensor.reshape.shape) if tensor.HasField("reshape") else dims
    if not dims:
        return "dims must not be empty (Triton refuses it; a batch-only tensor is dims [1] + reshape { shape: [ ] })"
    if len(model_side) != len(graph) or any(
        g != DYNAMIC and m != DYNAMIC and g != m for g, m in zip(graph, model_side, strict=True)
    ):
        label = "reshape" if tensor.HasField("reshape") else "dims"
        return f"{label} {model_side} does not fit the ONNX shape {graph}"
    fixed = DYNAMIC not in dims + model_side
    if tensor.HasField("reshape") and fixed and _product(dims) != _product(model_side):
        return f"dims {dims} and reshape {model_side} hold different numbers of elements"
    return None


def _product(values: Iterable[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


# ----------------------------------------------------------------- rendering
def pinned(config: pb.ModelConfig, versions: Iterable[int], name: str | None = None) -> pb.ModelConfig:
    """A copy whose version policy serves exactly ``versions`` (and, for staging, another name)."""
    out = pb.ModelConfig()
    out.CopyFrom(config)
    out.ClearField("version_policy")
    out.version_policy.specific.versions.extend(sorted(set(versions)))
    if name is not None:
        out.name = name
    return out


def render_pbtxt(config: pb.ModelConfig) -> str:
    """``config.pbtxt`` (protobuf text format), deterministic byte for byte."""
    return _HEADER + str(text_format.MessageToString(config))


def to_load_json(config: pb.ModelConfig) -> str:
    """The same config as JSON, for the ``config`` override of Triton's load API.

    Loading with an override lets tritonops choose what a replica holds during a deploy
    (the candidate under its staging name) without touching the committed ``config.pbtxt``.
    """
    return str(
        json_format.MessageToJson(config, preserving_proto_field_name=True, sort_keys=True, indent=None)
    )


def to_dict(config: pb.ModelConfig) -> dict[str, Any]:
    """For journals, current.json and history (JSON-safe, proto field names)."""
    return dict(json_format.MessageToDict(config, preserving_proto_field_name=True))


def from_dict(data: Mapping[str, Any], where: str) -> pb.ModelConfig:
    try:
        return json_format.ParseDict(dict(data), pb.ModelConfig())
    except json_format.ParseError as exc:
        raise ConfigInvalid(f"{where}: stored model config cannot be read: {exc}") from exc


def digest(config: pb.ModelConfig) -> str:
    """The identity of a configuration, whatever version it is pinned to or named."""
    unpinned = pb.ModelConfig()
    unpinned.CopyFrom(config)
    unpinned.ClearField("version_policy")
    unpinned.ClearField("name")
    canonical = json.dumps(to_dict(unpinned), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def diff(old: pb.ModelConfig | None, new: pb.ModelConfig) -> dict[str, list[str]]:
    """Top-level fields added, changed and removed (version policy and name aside)."""
    a = _comparable(old) if old is not None else {}
    b = _comparable(new)
    return {
        "added": sorted(b.keys() - a.keys()),
        "changed": sorted(k for k in a.keys() & b.keys() if a[k] != b[k]),
        "removed": sorted(a.keys() - b.keys()),
    }


def _comparable(config: pb.ModelConfig) -> dict[str, Any]:
    data = to_dict(config)
    for key in ("version_policy", "name"):
        data.pop(key, None)
    return data


# ----------------------------------------------------------------- what clients see
def client_signature(config: pb.ModelConfig) -> Signature:
    """Tensors as clients send and receive them: ``[-1] + dims`` when batching, else ``dims``."""

    def spec(tensor: Any) -> TensorSpec:
        name = pb.DataType.Name(tensor.data_type).removeprefix("TYPE_")
        datatype = "BYTES" if name == "STRING" else name
        batch = (DYNAMIC,) if config.max_batch_size > 0 else ()
        return TensorSpec(tensor.name, datatype, batch + tuple(int(d) for d in tensor.dims))

    return Signature(tuple(spec(t) for t in config.input), tuple(spec(t) for t in config.output))


def client_shaped(config: pb.ModelConfig, arrays: Mapping[str, Array]) -> dict[str, Array]:
    """Inputs in the model's shapes (an MLflow input example) reshaped to the config's dims."""
    out = {}
    for tensor in config.input:
        array = arrays.get(tensor.name)
        if array is None:
            continue
        dims = [int(d) for d in tensor.dims]
        want = ([array.shape[0]] if config.max_batch_size > 0 and array.ndim else []) + dims
        out[tensor.name] = _reshaped(array, want)
    return out


def model_shaped(config: pb.ModelConfig, arrays: Mapping[str, Array]) -> dict[str, Array]:
    """Client-shaped inputs as the model sees them: Triton applies ``reshape`` the same way."""
    out = dict(arrays)
    for tensor in config.input:
        array = arrays.get(tensor.name)
        if array is not None and tensor.HasField("reshape"):
            batch = [array.shape[0]] if config.max_batch_size > 0 and array.ndim else []
            out[tensor.name] = _reshaped(array, batch + [int(d) for d in tensor.reshape.shape])
    return out


def _reshaped(array: Array, shape: list[int]) -> Array:
    """``array`` in ``shape`` (one -1 allowed) when the sizes agree; unchanged otherwise."""
    if list(array.shape) == shape or shape.count(DYNAMIC) > 1:
        return array
    try:
        return array.reshape(shape)
    except ValueError:
        return array  # the smoke check then reports the mismatch


def interface_gate(
    committed_signature: Signature | None,
    committed: pb.ModelConfig | None,
    signature: Signature,
    candidate: pb.ModelConfig,
) -> list[str]:
    """The interface gate, defined once (materialize, ``rollback --to`` and ``plan`` ask it): what
    would break the committed version's clients — its tensors' names, types and shapes first,
    then what the configs add (batching, client-facing dims). Nothing committed: nothing breaks."""
    if committed_signature is None or committed is None:
        return []
    return tensor_changes(committed_signature, signature) or interface_changes(committed, candidate)


def interface_changes(committed: pb.ModelConfig, candidate: pb.ModelConfig) -> list[str]:
    """What breaks clients of the committed config beyond the tensors' names/types/shapes.

    A lower ``max_batch_size`` (or batching switched off or on) makes requests that work
    today fail; so does a change of the dims clients send (e.g. a new ``reshape``).
    """
    problems = []
    if candidate.max_batch_size < committed.max_batch_size:
        problems.append(
            f"max_batch_size {committed.max_batch_size} -> {candidate.max_batch_size} "
            "(clients sending bigger batches would fail)"
        )
    elif committed.max_batch_size == 0 < candidate.max_batch_size:
        problems.append(f"max_batch_size 0 -> {candidate.max_batch_size} (requests gain a batch dim)")
    if not problems:
        problems += tensor_changes(client_signature(committed), client_signature(candidate))
    return problems


__all__ = [
    "ARTIFACT_FIELDS",
    "DEFAULT_MAX_BATCH_SIZE",
    "ArtifactFields",
    "ConfigSource",
    "ModelConfig",
    "client_signature",
    "derive_defaults",
    "diff",
    "digest",
    "effective_config",
    "from_dict",
    "interface_changes",
    "interface_gate",
    "parse_pbtxt",
    "pinned",
    "render_pbtxt",
    "to_dict",
    "to_load_json",
]
