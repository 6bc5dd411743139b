"""GuardService: policies (put, get, list, delete) and Check, proto <-> domain.

A policy is validated against the stored dictionaries it names when it is put, and stored as
JSON (store/policies.py). Check reads the policy (latest or a given version), runs its
dictionaries on the texts through the same path as Detect (api/detection.plan, then
engine/serving.detect: one forward per batch serves every hook point the policy's dictionaries
use) and turns the matches into rule scores and a verdict (chunkscope/policies.py). Anything that
keeps Check from answering is an error status, never a verdict. `GuardServicer.check` is that
path; the Envoy external processor (api/ext_proc.py) calls it too.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import OrderedDict
from typing import Any

from google.protobuf import json_format

from chunkscope import metrics, policies
from chunkscope.api.detection import Limits, plan, too_many_tokens
from chunkscope.api.interceptors import audit_detail, caller
from chunkscope.api.paging import next_token, page_window
from chunkscope.api.perturbation import MAX_INTERVENTIONS, spec_of
from chunkscope.api.presets import Presets, renamed, stored_to_proto
from chunkscope.api.presets import to_proto as preset_proto
from chunkscope.engine import serving, tokens
from chunkscope.engine.capture import Segment, token_count
from chunkscope.engine.chunks import DetectorCache
from chunkscope.engine.registry import ModelRegistry
from chunkscope.engine.steering import MODES
from chunkscope.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    check,
)
from chunkscope.store.dictionaries import DictionaryStore
from chunkscope.store.policies import PolicyRecord, PolicyStore
from chunkscope_client.v1 import common_pb2, detection_pb2, guard_pb2, guard_pb2_grpc

pb = guard_pb2
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NAME_FIX = "1-64 characters: a-z, 0-9, '.', '_', '-', starting with a letter or digit"
MAX_RULES, MAX_DICTIONARIES, MAX_ROLES, MAX_ROLE_CHARS = 64, 16, 16, 64
MAX_DESCRIPTION, MAX_MIN_TOKENS, MAX_LABEL_CHARS = 1024, 1 << 16, 256
_ACTIONS = {
    pb.POLICY_ACTION_ALLOW: "allow",
    pb.POLICY_ACTION_BLOCK: "block",
    pb.POLICY_ACTION_INTERVENE: "intervene",
}
_ACTION_PROTO = {v: k for k, v in _ACTIONS.items()}
_INPUT_TYPES = {pb.INPUT_TYPE_REQUEST: "request", pb.INPUT_TYPE_RESPONSE: "response"}
_VERDICTS = {
    "allow": pb.VERDICT_ALLOW,
    "block": pb.VERDICT_BLOCK,
    "intervene": pb.VERDICT_INTERVENE,
}
_SPLIT = "split it into several texts"


def check_name(name: str, field: str, noun: str = "policy") -> None:
    if not name:
        raise InvalidArgument.field(field, f"required: a {noun} name ({NAME_FIX})")
    if not NAME.match(name):
        raise InvalidArgument.field(field, f"{name[:80]!r} is not a {noun} name: {NAME_FIX}")


def _version(value: int, field: str) -> None:
    if value < 0:
        raise InvalidArgument.field(field, "must be >= 0 (0 = the latest version)")


def _expected(request: Any, noun: str = "policy") -> int | None:
    if not request.HasField("expected_version"):
        return None
    if request.expected_version < 0:
        raise InvalidArgument.field(
            "expected_version", f"must be >= 0 (0: the {noun} must not exist yet)"
        )
    return int(request.expected_version)


def _rules(policy: pb.Policy) -> list[policies.Rule]:
    """The domain rules of a validated policy."""
    return [
        policies.Rule(
            dictionary_id=r.dictionary_id,
            label=r.label,
            min_tokens=r.min_tokens or 1,
            score_threshold=r.score_threshold if r.HasField("score_threshold") else None,
            action=_ACTIONS[r.action],
            input_types=frozenset(_INPUT_TYPES[t] for t in r.input_types),
        )
        for r in policy.rules
    ]


def _to_proto(record: PolicyRecord) -> pb.Policy:
    """A stored policy version as the API shows it."""
    return stored_to_proto(record, pb.Policy(), "policy")


class GuardServicer(guard_pb2_grpc.GuardServiceServicer):
    def __init__(
        self,
        registry: ModelRegistry,
        cache: DetectorCache,
        store: PolicyStore,
        dictionaries: DictionaryStore,
        max_input_tokens: int,
        max_inputs: int,
        presets: Presets | None = None,
    ) -> None:
        self.registry = registry
        self.presets = presets
        self.cache = cache
        self.store = store
        self.dictionaries = dictionaries
        self.limits = Limits.of(max_input_tokens)
        self.max_inputs = max_inputs
        # Parsed versions: (name, version) always names the same policy (versions are not reused).
        self._parsed: OrderedDict[tuple[str, int], tuple[pb.Policy, list[policies.Rule]]] = (
            OrderedDict()
        )

    # ----- policies ------------------------------------------------------------------------

    async def _validated(self, policy: pb.Policy) -> pb.Policy:
        """The policy to store (output-only fields cleared), or the first fault, by field."""
        check_name(policy.name, "policy.name")
        violations: list[FieldViolation] = []
        if len(policy.description) > MAX_DESCRIPTION:
            violations.append(
                FieldViolation("policy.description", f"at most {MAX_DESCRIPTION} characters")
            )
        if not policy.model.name:
            violations.append(FieldViolation("policy.model.name", "required: a model's name"))
        if not policy.rules:
            violations.append(FieldViolation("policy.rules", "required: at least one rule"))
        if len(policy.rules) > MAX_RULES:
            violations.append(FieldViolation("policy.rules", f"at most {MAX_RULES} rules"))
        if len(policy.roles) > MAX_ROLES:
            violations.append(FieldViolation("policy.roles", f"at most {MAX_ROLES} roles"))
        for i, role in enumerate(policy.roles):
            if not 1 <= len(role) <= MAX_ROLE_CHARS:
                violations.append(
                    FieldViolation(f"policy.roles[{i}]", f"1-{MAX_ROLE_CHARS} characters")
                )
        check(violations)
        for i, rule in enumerate(policy.rules):
            self._check_rule(rule, f"policy.rules[{i}]")
        ids = list(dict.fromkeys(r.dictionary_id for r in policy.rules))
        if len(ids) > MAX_DICTIONARIES:
            raise InvalidArgument.field(
                "policy.rules", f"name {len(ids)} dictionaries; at most {MAX_DICTIONARIES}"
            )
        chunk_ids = [
            iv.chunk.dictionary_id
            for r in policy.rules
            for iv in r.interventions
            if iv.WhichOneof("target") == "chunk"
        ]
        manifests = await asyncio.to_thread(self._manifests, policy, ids, chunk_ids)
        for i, rule in enumerate(policy.rules):
            labels = [e["label"] for e in manifests[rule.dictionary_id]["entries"]]
            if rule.label not in labels:
                raise InvalidArgument.field(
                    f"policy.rules[{i}].label",
                    f"dictionary {rule.dictionary_id} has no entry labelled {rule.label[:80]!r}; "
                    f"its labels include {sorted(set(labels))[:10]}",
                )
            width = int(manifests[rule.dictionary_id]["hidden_size"])
            for j, iv in enumerate(rule.interventions):
                self._check_intervention(iv, f"policy.rules[{i}].interventions[{j}]", manifests,
                                         width)  # fmt: skip
        stored = pb.Policy()
        stored.CopyFrom(policy)
        stored.ClearField("version")
        stored.ClearField("create_time")
        stored.ClearField("author_key_id")
        return stored

    @staticmethod
    def _check_rule(rule: pb.PolicyRule, field: str) -> None:
        violations = []
        if not rule.dictionary_id:
            violations.append(
                FieldViolation(f"{field}.dictionary_id", "required: a stored dictionary's id")
            )
        if not rule.label or len(rule.label) > MAX_LABEL_CHARS:
            violations.append(
                FieldViolation(
                    f"{field}.label",
                    "required: a concept label of the "
                    f"dictionary (at most {MAX_LABEL_CHARS} characters)",
                )
            )
        if not 0 <= rule.min_tokens <= MAX_MIN_TOKENS:
            violations.append(
                FieldViolation(f"{field}.min_tokens", f"must be in 0..{MAX_MIN_TOKENS} (0 = 1)")
            )
        if rule.HasField("score_threshold") and not math.isfinite(rule.score_threshold):
            violations.append(FieldViolation(f"{field}.score_threshold", "must be finite"))
        if rule.action not in _ACTIONS:
            violations.append(
                FieldViolation(f"{field}.action", "required: ALLOW, BLOCK or INTERVENE")
            )
        for j, kind in enumerate(rule.input_types):
            if kind not in _INPUT_TYPES:
                violations.append(
                    FieldViolation(f"{field}.input_types[{j}]", "must be REQUEST or RESPONSE")
                )
        if rule.action == pb.POLICY_ACTION_INTERVENE and not rule.interventions:
            violations.append(
                FieldViolation(f"{field}.interventions", "required with INTERVENE: what to apply")
            )
        if rule.action != pb.POLICY_ACTION_INTERVENE and rule.interventions:
            violations.append(
                FieldViolation(
                    f"{field}.interventions", "only rules with INTERVENE carry interventions"
                )
            )
        if len(rule.interventions) > MAX_INTERVENTIONS:
            violations.append(
                FieldViolation(f"{field}.interventions", f"at most {MAX_INTERVENTIONS}")
            )
        check(violations)

    def _manifests(
        self, policy: pb.Policy, ids: list[str], chunk_ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        """The manifests of the dictionaries the policy names, each of the policy's model."""
        fields = {r.dictionary_id: f"policy.rules[{i}].dictionary_id"
                  for i, r in reversed(list(enumerate(policy.rules)))}  # fmt: skip
        manifests = {}
        for dictionary_id in dict.fromkeys([*ids, *chunk_ids]):
            field = fields.get(dictionary_id, "policy.rules.interventions.chunk.dictionary_id")
            try:
                manifest = self.dictionaries.read_manifest(dictionary_id)
            except InvalidArgument as exc:
                raise InvalidArgument.field(field, exc.violations[0].description) from None
            model = manifest["model"]
            if model["name"] != policy.model.name or (
                policy.model.content_hash and model["content_hash"] != policy.model.content_hash
            ):
                raise FailedPrecondition(
                    f"{field}: dictionary {dictionary_id} was extracted for model "
                    f"{model['name']!r} ({model['content_hash'][:19]}…), not the policy's model "
                    f"{policy.model.name!r}; name dictionaries of the policy's model",
                    reason="DICTIONARY_MISMATCH",
                    metadata={"dictionary": dictionary_id},
                )
            manifests[dictionary_id] = manifest
        return manifests

    @staticmethod
    def _check_intervention(
        iv: Any, field: str, manifests: dict[str, dict[str, Any]], width: int | None
    ) -> None:
        """What can be checked without a prompt: Generate checks positions when it applies it,
        and an inline vector's width (`width` None: no model to check it against) too."""
        spec = spec_of(iv, field)
        violations = []
        if spec.mode not in MODES:
            violations.append(
                FieldViolation(f"{field}.mode", "required: ACTIVATE, INHIBIT, ADD or PROJECT_OUT")
            )
        if not math.isfinite(spec.alpha):
            violations.append(FieldViolation(f"{field}.alpha", "must be a finite number"))
        tail = iv.positions.HasField("message_tail")
        if not (spec.indices or spec.all_prompt or spec.generated or tail):
            violations.append(
                FieldViolation(
                    f"{field}.positions",
                    "required: indices, all_prompt, generated and/or message_tail",
                )
            )
        if spec.vector is not None:
            if not spec.hook_point:
                violations.append(
                    FieldViolation(f"{field}.hook_point", "required with an inline vector")
                )
            if spec.mode not in ("add", "project_out"):
                violations.append(
                    FieldViolation(
                        f"{field}.mode", "an inline vector supports ADD and PROJECT_OUT only"
                    )
                )
            if width is not None and spec.vector.shape != (width,):
                violations.append(
                    FieldViolation(
                        f"{field}.vector.shape", f"must be [{width}] (the model's width)"
                    )
                )
            elif width is None and spec.vector.ndim != 1:
                violations.append(
                    FieldViolation(f"{field}.vector.shape", "must be [width]: one dimension")
                )
            elif not (spec.vector.size and all(map(math.isfinite, spec.vector.tolist()))
                      and any(spec.vector.tolist())):  # fmt: skip
                violations.append(FieldViolation(f"{field}.vector", "must be finite and non-zero"))
        else:
            entries = len(manifests[spec.dictionary_id]["entries"])
            if not 0 <= spec.entry_id < entries:
                violations.append(FieldViolation(
                    f"{field}.chunk.entry_id",
                    f"{spec.entry_id} is not an entry of {spec.dictionary_id} (0..{entries - 1})",
                ))  # fmt: skip
        check(violations)

    async def PutPolicy(self, request: pb.PutPolicyRequest, context: Any) -> pb.PutPolicyResponse:
        if not request.HasField("policy"):
            raise InvalidArgument.field("policy", "required: the policy to store")
        expected = _expected(request)
        policy = await self._validated(request.policy)
        who = caller(context)
        body = json_format.MessageToJson(policy, sort_keys=True, indent=None)
        record = await asyncio.to_thread(
            self.store.put, policy.name, body, who.key_id if who else "", expected
        )
        audit_detail(context, f"policy {record.name} version {record.version}")
        return pb.PutPolicyResponse(policy=_to_proto(record))

    async def GetPolicy(self, request: pb.GetPolicyRequest, context: Any) -> pb.GetPolicyResponse:
        check_name(request.name, "name")
        _version(request.version, "version")
        record = await asyncio.to_thread(self.store.get, request.name, int(request.version))
        return pb.GetPolicyResponse(policy=_to_proto(record))

    async def ListPolicies(
        self, request: pb.ListPoliciesRequest, context: Any
    ) -> pb.ListPoliciesResponse:
        offset, size = page_window(request.page)
        if request.name:
            check_name(request.name, "name")
            records, total = await asyncio.to_thread(
                self.store.list_versions, request.name, offset, size
            )
        else:
            records, total = await asyncio.to_thread(self.store.list_latest, offset, size)
        token = next_token(offset, size, total)
        return pb.ListPoliciesResponse(
            policies=[_to_proto(r) for r in records],
            page=common_pb2.PageResponse(next_page_token=token, total_size=total),
        )

    async def DeletePolicy(
        self, request: pb.DeletePolicyRequest, context: Any
    ) -> pb.DeletePolicyResponse:
        check_name(request.name, "name")
        expected = _expected(request)
        who = caller(context)
        record = await asyncio.to_thread(
            self.store.delete, request.name, who.key_id if who else "", expected
        )
        audit_detail(context, f"policy {record.name} version {record.version} deleted")
        return pb.DeletePolicyResponse(name=record.name, version=record.version)

    # ----- intervention presets ------------------------------------------------------------

    def _preset_store(self) -> Presets:
        if self.presets is None:
            raise Unavailable("this server keeps no presets", reason="PRESETS_UNAVAILABLE")
        return self.presets

    async def _validated_preset(self, preset: pb.InterventionPreset) -> pb.InterventionPreset:
        """The preset to store (output-only fields cleared), or its faults by field. What needs
        a model and a prompt (vector widths, positions in range) is checked when it is used."""
        check_name(preset.name, "preset.name", "preset")
        violations: list[FieldViolation] = []
        if len(preset.description) > MAX_DESCRIPTION:
            violations.append(
                FieldViolation("preset.description", f"at most {MAX_DESCRIPTION} characters")
            )
        if not preset.interventions:
            violations.append(
                FieldViolation("preset.interventions", "required: at least one intervention")
            )
        if len(preset.interventions) > MAX_INTERVENTIONS:
            violations.append(
                FieldViolation("preset.interventions", f"at most {MAX_INTERVENTIONS}")
            )
        check(violations)
        fields: dict[str, str] = {}
        for j, iv in enumerate(preset.interventions):
            if iv.WhichOneof("target") == "chunk":
                fields.setdefault(iv.chunk.dictionary_id, f"preset.interventions[{j}]")
        manifests = await asyncio.to_thread(self._chunk_manifests, fields)
        for j, iv in enumerate(preset.interventions):
            self._check_intervention(iv, f"preset.interventions[{j}]", manifests, None)
        stored = pb.InterventionPreset()
        stored.CopyFrom(preset)
        stored.ClearField("version")
        stored.ClearField("create_time")
        stored.ClearField("author_key_id")
        return stored

    def _chunk_manifests(self, fields: dict[str, str]) -> dict[str, dict[str, Any]]:
        """The manifests of the dictionaries a preset's chunks name ({id: first field})."""
        manifests = {}
        for dictionary_id, field in fields.items():
            where = f"{field}.chunk.dictionary_id"
            if not dictionary_id:
                raise InvalidArgument.field(where, "required: a stored dictionary's id")
            try:
                manifests[dictionary_id] = self.dictionaries.read_manifest(dictionary_id)
            except (InvalidArgument, NotFound) as exc:
                raise renamed(exc, "", where) from None
        return manifests

    async def PutPreset(self, request: pb.PutPresetRequest, context: Any) -> pb.PutPresetResponse:
        presets = self._preset_store()
        if not request.HasField("preset"):
            raise InvalidArgument.field("preset", "required: the preset to store")
        expected = _expected(request, "preset")
        preset = await self._validated_preset(request.preset)
        who = caller(context)
        body = json_format.MessageToJson(preset, sort_keys=True, indent=None)
        record = await asyncio.to_thread(
            presets.store.put, preset.name, body, who.key_id if who else "", expected
        )
        audit_detail(context, f"preset {record.name} version {record.version}")
        return pb.PutPresetResponse(preset=preset_proto(record))

    async def GetPreset(self, request: pb.GetPresetRequest, context: Any) -> pb.GetPresetResponse:
        presets = self._preset_store()
        check_name(request.name, "name", "preset")
        _version(request.version, "version")
        return pb.GetPresetResponse(preset=await presets.read(request.name, int(request.version)))

    async def ListPresets(
        self, request: pb.ListPresetsRequest, context: Any
    ) -> pb.ListPresetsResponse:
        presets = self._preset_store()
        offset, size = page_window(request.page)
        if request.name:
            check_name(request.name, "name", "preset")
            records, total = await asyncio.to_thread(
                presets.store.list_versions, request.name, offset, size
            )
        else:
            records, total = await asyncio.to_thread(presets.store.list_latest, offset, size)
        return pb.ListPresetsResponse(
            presets=[preset_proto(r) for r in records],
            page=common_pb2.PageResponse(
                next_page_token=next_token(offset, size, total), total_size=total
            ),
        )

    async def DeletePreset(
        self, request: pb.DeletePresetRequest, context: Any
    ) -> pb.DeletePresetResponse:
        presets = self._preset_store()
        check_name(request.name, "name", "preset")
        expected = _expected(request, "preset")
        who = caller(context)
        record = await asyncio.to_thread(
            presets.store.delete, request.name, who.key_id if who else "", expected
        )
        audit_detail(context, f"preset {record.name} version {record.version} deleted")
        return pb.DeletePresetResponse(name=record.name, version=record.version)

    # ----- Check ---------------------------------------------------------------------------

    async def _policy(self, name: str, version: int) -> tuple[pb.Policy, list[policies.Rule]]:
        record = await asyncio.to_thread(self.store.get, name, version)
        key = (record.name, record.version)
        cached = self._parsed.get(key)
        if cached is None:
            policy = _to_proto(record)
            cached = (policy, _rules(policy))
            self._parsed[key] = cached
            while len(self._parsed) > 128:
                self._parsed.popitem(last=False)
        self._parsed.move_to_end(key)
        return cached

    def _inputs(self, request: pb.CheckRequest) -> tuple[str, list[tuple[int, str, str]]]:
        """("texts" or "messages", [(index, role, text)]), each bounded in bytes."""
        if bool(request.texts) == bool(request.messages):
            raise InvalidArgument.field(
                "texts", "give exactly one of texts and messages (the texts to check)"
            )
        kind = "texts" if request.texts else "messages"
        count = len(request.texts) or len(request.messages)
        if count > self.max_inputs:
            raise ResourceExhausted(
                f"{kind}: {count} inputs; this server takes at most {self.max_inputs} per request "
                "(--max-inputs-per-request): split the batch",
                reason="TOO_MANY_INPUTS",
                metadata={"limit": str(self.max_inputs)},
            )
        items = [(i, "", t) for i, t in enumerate(request.texts)]
        violations = []
        for i, m in enumerate(request.messages):
            if not 1 <= len(m.role) <= MAX_ROLE_CHARS:
                violations.append(
                    FieldViolation(
                        f"messages[{i}].role", f"required: 1-{MAX_ROLE_CHARS} characters"
                    )
                )
            items.append((i, m.role, m.content))
        check(violations)
        for i, _, text in items:
            field = f"texts[{i}]" if kind == "texts" else f"messages[{i}].content"
            tokens.check_text_bytes(text, self.limits.max_bytes, field, _SPLIT)
        return kind, items

    async def Check(self, request: pb.CheckRequest, context: Any) -> pb.CheckResponse:
        return await self.check(request)

    async def check(self, request: pb.CheckRequest) -> pb.CheckResponse:
        """Check's work, also the Envoy external processor's (api/ext_proc.py): one path from
        a request to a verdict; every refusal is a ChunkscopeError, never a verdict."""
        return (await self.check_policy(request))[0]

    async def check_policy(self, request: pb.CheckRequest) -> tuple[pb.CheckResponse, pb.Policy]:
        """`check`, and the policy version it used (read once: a caller that needs the policy's
        rules, as /v1/moderations does, gets the very version the verdict came from)."""
        check_name(request.policy, "policy")
        _version(request.policy_version, "policy_version")
        input_type = _INPUT_TYPES.get(request.input_type)
        if input_type is None:
            raise InvalidArgument.field("input_type", "required: REQUEST or RESPONSE")
        kind, items = self._inputs(request)
        policy, rules = await self._policy(request.policy, int(request.policy_version))
        applied = [i for i, r in enumerate(rules) if r.applies_to(input_type)]
        roles = set(policy.roles)
        checked = [
            (i, text)
            for i, role, text in items
            if text.strip() and (kind == "texts" or not roles or role in roles)
        ]
        reply = pb.CheckResponse(policy=policy.name, policy_version=policy.version)
        scores: list[policies.Score] = []
        if applied and checked:
            ids = list(dict.fromkeys(rules[i].dictionary_id for i in applied))
            await self.cache.prefetch(ids)
            config = detection_pb2.DetectionConfig(model=policy.model, dictionary_ids=ids)
            p = plan(config, self.registry, self.cache, field="policy")
            if p.model.is_recurrent:
                raise FailedPrecondition(
                    f"policy {policy.name}'s model {p.model_name} is a recurrent model; Check "
                    "takes texts for language models",
                    reason="POLICY_MODEL_NOT_SUPPORTED",
                )
            segments = [Segment(n, 0, text) for n, (_, text) in enumerate(checked)]
            fields = [f"{kind}[{i}]" for i, _ in checked]
            await tokens.off_loop(self._check_tokens, p.model, segments, fields)
            found, elapsed = await serving.detect(
                self.registry, p.model_name, p.content_hash, p.detectors, segments, p.max_tokens
            )
            detectors = {d.id: (k, d) for k, d in enumerate(p.detectors)}
            for n, (index, _) in enumerate(checked):
                detection = found[n]
                for r in applied:
                    k, detector = detectors[rules[r].dictionary_id]
                    scores.append(policies.score(r, rules[r], detector, detection.results[k],
                                                 detection.offsets, index))  # fmt: skip
                reply.n_tokens += len(detection.token_ids)
            reply.detect_ns = elapsed
        action, fired = policies.verdict(rules, scores)
        reply.verdict = _VERDICTS[action]
        reply.fired_rules.extend(fired)
        if applied and checked:
            reply.reason = policies.reason(rules, scores, action, kind, policy.name)
        elif not applied:
            reply.reason = f"no rule of policy {policy.name} applies to {input_type}s"
        else:
            reply.reason = "nothing to check: every input is empty or has a role the policy skips"
        for s in scores:
            rule = policy.rules[s.rule_index]
            reply.scores.append(pb.ConceptScore(
                rule_index=s.rule_index, dictionary_id=rule.dictionary_id, label=rule.label,
                input_index=s.input_index, count=s.count, best_score=s.best_score,
                fired=s.fired, action=rule.action,
                spans=[pb.TokenSpan(char_start=sp.char_start, char_end=sp.char_end,
                                    token_start=sp.token_start, token_end=sp.token_end,
                                    best_score=sp.best_score) for sp in s.spans],
            ))  # fmt: skip
        if action == "intervene":
            for i in fired:
                if rules[i].action == "intervene":
                    reply.interventions.extend(policy.rules[i].interventions)
        metrics.GUARD_VERDICTS.labels(policy.name, action).inc()
        for i in fired:
            metrics.GUARD_RULES_FIRED.labels(policy.name, rules[i].action).inc()
        return reply, policy

    def _check_tokens(self, model: Any, segments: list[Segment], fields: list[str]) -> None:
        """INPUT_TOO_LONG for an input over --max-input-tokens (it tokenizes: off the loop)."""
        for seg, field in zip(segments, fields, strict=True):
            n = token_count(model, seg)
            if n > self.limits.max_tokens:
                raise too_many_tokens(field, n, self.limits.max_tokens, _SPLIT)
