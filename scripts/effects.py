"""Steering effects of PA chunks on SmolLM2-135M-Instruct, through chunkscope's gRPC API.

    .venv/bin/python scripts/effects.py --data-dir data --doc docs/REPRODUCTION.md

The paper's perturbation experiment (docs/METHODS.md §4, §7): graft a concept's chunk into neutral
questions and count how often the continuation says the concept's word; freeze it in prompts that
make the model say the word and count how often the word disappears. Everything runs through a real
server (`spawn_server`) and the Python client, as any user's program would:

1. ExtractDictionary: Population Averaging entries for the concepts of docs/concepts.json at a few
   candidate hook points (blocks 8, 12, 16, 20 resid_post by default).
2. Development subset (the first `n_dev` neutral prompts of docs/prompts.json): per concept, the
   hook point where grafting gives the most coherent continuations that contain the word, then the
   ADD strength at that hook point.
3. Activation on the other neutral prompts: Generate with a control arm (same sampling parameters
   and seed in both arms, a seed per prompt) for three interventions: ACTIVATE at the authors'
   positions (the three tokens before the question's last token), ACTIVATE at the literal indices
   [-4, -3, -2] of the chat-formatted prompt (template tokens), and ADD along the entry's direction
   on every prompt and generated token. Perturb gives the change in the next-token log-probability
   of the target token.
4. Inhibition on prompts that make the model say the word: PROJECT_OUT at the chosen hook point and
   at all candidate hook points, and INHIBIT (zeroing the entry's neurons) on a few prompts.

The model's chat template is applied client-side with transformers' AutoTokenizer (the tokenizer
files of the model directory); the same tokenizer serves the crude coherence check (is a word one
token of the vocabulary). Tokenization of the prompts, to place interventions, comes from the
server (Detect's per-token character spans). The control arm of a prompt is generated once (it is
the same for every concept: same prompt, sampling parameters and seed) and reused; a final check
regenerates one request and compares both arms. The results are written between the markers
`<!-- effects:start -->` and `<!-- effects:end -->` of --doc (replaced if present, appended
otherwise); every continuation is kept in <data-dir>/effects/results.json.

Parts (--parts, default all): `main` is the study above; `sparse` compares full-width PA entries
with sparser ones of the same concepts (sparsity_margin, max_neurons; every PA parameter explicit)
under ACTIVATE at the question's last words, and INHIBIT and PROJECT_OUT on prompts that make the
model say the word, with shared control arms and seeds. It sends the prompts as chat messages
(the server applies the template and resolves the graft positions, Positions.message_tail) and
writes its own block between `<!-- effects-sparse:start -->` and `<!-- effects-sparse:end -->`
(continuations in <data-dir>/effects/sparse.json), so running it alone leaves the main block as
it is.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from chunkscope.demo_model import DEMO_MODEL_NAME
from chunkscope.launcher import ServerProcess, spawn_server
from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import common_pb2, models_pb2
from chunkscope_client.v1 import detection_pb2 as det
from chunkscope_client.v1 import dictionaries_pb2 as dpb
from chunkscope_client.v1 import perturbation_pb2 as ppb

REPO = Path(__file__).resolve().parent.parent
START_MARKER = "<!-- effects:start -->"
END_MARKER = "<!-- effects:end -->"
DESCRIPTION_PREFIX = "effects:"
LITERAL_INDICES = (-4, -3, -2)
SPARSE_START_MARKER = "<!-- effects-sparse:start -->"
SPARSE_END_MARKER = "<!-- effects-sparse:end -->"
PARTS = ("main", "sparse")
# The authors' graft positions in a chat prompt: the three tokens before the last message's last
# token, found by the server in its own tokenization of the formatted prompt.
QUESTION_TAIL = ppb.MessageTokens(message_index=-1, count=3, skip_last=1)

ACTIVATE = ppb.INTERVENTION_MODE_ACTIVATE
INHIBIT = ppb.INTERVENTION_MODE_INHIBIT
ADD = ppb.INTERVENTION_MODE_ADD
PROJECT_OUT = ppb.INTERVENTION_MODE_PROJECT_OUT

# docs/METHODS.md §7: grafting on TREC questions, LLaMA-3-8B (control top_p 0.5, graft top_p 0.9,
# max_length 200, the word searched in the decoded output including the prompt).
PAPER_GRAFT = {"cheese": (0.0, 0.82), "cake": (0.0, 0.72), "school": (0.01, 0.79)}
PAPER_POOLED = (0.129, 0.488)

# Crude coherence check (see `coherence`).
MIN_KNOWN = 0.75  # share of words that are one token of the vocabulary
MIN_DISTINCT = 0.45  # distinct words / words
MAX_RUN = 2  # the same word at most this many times in a row
MAX_FUNCTION = 0.7  # share of function words ("the of is a that ..." salad)
MIN_FUNCTION = 0.1  # ... and at least this share in ten words or more (salad of content words)
MAX_REPEATED = 0.3  # share of word trigrams seen earlier in the same continuation (loops)
FUNCTION_WORDS = frozenset(
    " ".join((
        "a an the of to in on at by for with from and or but is are was were be been it its this",
        "that these those as if so not no can will would could should may might do does did has",
        "have had i you he she we they me him her us them my your his our their what which who",
        "when where why how than then there here just also",
    )).split()
)  # fmt: skip
WORD_RE = re.compile(r"[A-Za-z]+")

T = TypeVar("T")


# ----- small helpers ----------------------------------------------------------------------------


class Timer:
    """Named parts and their wall-clock seconds, printed as they finish."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], T]) -> T:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.parts[name] = time.perf_counter() - start
            print(f"=== {name}: {self.parts[name]:.1f}s ===", flush=True)


@dataclass
class Throughput:
    """Generated tokens and the time spent waiting for them."""

    tokens: int = 0
    seconds: float = 0.0
    requests: int = 0
    perturb_calls: int = 0
    perturb_seconds: float = 0.0
    server_cpu_seconds: float = float("nan")

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, mid - half), min(1.0, mid + half))


def word_pattern(words: Sequence[str]) -> re.Pattern[str]:
    """Whole word, case-insensitive, any of the concept's words."""
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


def echo_pattern(words: Sequence[str]) -> re.Pattern[str]:
    """The word twice in a row ("cheese cheese", "cheese, cheese")."""
    any_word = "(?:" + "|".join(re.escape(w) for w in words) + ")"
    return re.compile(rf"\b{any_word}\b[\s,.;:!-]+{any_word}\b", re.IGNORECASE)


def short(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def md_quote(text: str) -> str:
    """A continuation as inline code-free markdown (pipes and backticks escaped)."""
    return short(text).replace("|", "\\|").replace("`", "'")


# ----- prompts and tokenizer --------------------------------------------------------------------


class Tokenizer:
    """The model's tokenizer, client-side: the chat template and the vocabulary check only."""

    def __init__(self, model_dir: Path) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(model_dir))

    def chat(self, question: str) -> str:
        messages = [{"role": "user", "content": question}]
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(text)

    def single_token(self, text: str) -> bool:
        return len(self.tok.encode(text, add_special_tokens=False)) == 1


@dataclass(frozen=True)
class Prompt:
    """One question, formatted, with its seed and where the question's tokens are."""

    question: str
    text: str
    seed: int
    n_tokens: int = 0
    tail: tuple[int, ...] = ()  # negative indices: the three tokens before the question's last
    tail_tokens: tuple[str, ...] = ()
    literal_tokens: tuple[str, ...] = ()
    server_chat: bool = False  # sent as a chat message; the server applies the template

    def input_fields(self) -> dict[str, Any]:
        """The prompt fields of a Generate/Perturb request: chat `messages` or the text."""
        if self.server_chat:
            return {"messages": [ppb.ChatPromptMessage(role="user", content=self.question)]}
        return {}


@dataclass(frozen=True)
class Continuation:
    text: str
    n_tokens: int


@dataclass(frozen=True)
class Chunk:
    """A PA entry at one hook point."""

    dictionary_id: str
    entry_id: int
    hook_point: str
    label: str
    tau: float
    n_neurons: int
    threshold: float
    heldout_tpr: float
    heldout_fpr: float

    @property
    def radius(self) -> float:
        """Euclidean radius implied by the match threshold (a mean squared deviation)."""
        return math.sqrt(self.threshold * self.n_neurons)

    def ref(self) -> ppb.ChunkRef:
        return ppb.ChunkRef(dictionary_id=self.dictionary_id, entry_id=self.entry_id)


def intervention(
    chunk: Chunk,
    mode: ppb.InterventionMode.ValueType,
    *,
    indices: Sequence[int] = (),
    all_prompt: bool = False,
    generated: bool = False,
    alpha: float = 0.0,
    question_tail: bool = False,
) -> ppb.Intervention:
    """`question_tail`: the authors' positions resolved by the server (chat prompts only)."""
    positions = ppb.Positions(indices=list(indices), all_prompt=all_prompt, generated=generated)
    if question_tail:
        positions.message_tail.CopyFrom(QUESTION_TAIL)
    return ppb.Intervention(chunk=chunk.ref(), mode=mode, alpha=alpha, positions=positions)


# ----- coherence --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coherence:
    words: int
    known: float
    distinct: float
    run: int
    function: float
    repeated: float

    @property
    def ok(self) -> bool:
        if self.words == 0:
            return False
        if self.words < 5:  # a short answer ("Canberra.") is judged on its words only
            return self.known >= MIN_KNOWN
        return (
            self.known >= MIN_KNOWN
            and self.distinct >= MIN_DISTINCT
            and self.run <= MAX_RUN
            and self.function <= MAX_FUNCTION
            and (self.words < 10 or self.function >= MIN_FUNCTION)
            and self.repeated <= MAX_REPEATED
        )


def make_coherence(tokenizer: Tokenizer) -> Callable[[str], Coherence]:
    """Crude: mostly vocabulary words, little repetition, not a salad of function words."""

    @cache
    def known(word: str) -> bool:
        return tokenizer.single_token(" " + word) or tokenizer.single_token(" " + word.lower())

    def check(text: str) -> Coherence:
        words = WORD_RE.findall(text)
        if not words:
            return Coherence(0, 0.0, 0.0, 0, 0.0, 0.0)
        lower = [w.lower() for w in words]
        run = best = 1
        for a, b in itertools.pairwise(lower):
            run = run + 1 if a == b else 1
            best = max(best, run)
        trigrams = list(zip(lower, lower[1:], lower[2:], strict=False))
        seen: set[tuple[str, ...]] = set()
        repeats = 0
        for trigram in trigrams:
            repeats += trigram in seen
            seen.add(trigram)
        return Coherence(
            words=len(words),
            known=sum(known(w) for w in words) / len(words),
            distinct=len(set(lower)) / len(lower),
            run=best,
            function=sum(w in FUNCTION_WORDS for w in lower) / len(lower),
            repeated=repeats / len(trigrams) if trigrams else 0.0,
        )

    return check


# ----- the API calls ----------------------------------------------------------------------------


class Api:
    """The calls this script makes, with token accounting."""

    def __init__(self, cs: Client, model: models_pb2.Model, args: argparse.Namespace) -> None:
        self.cs = cs
        self.model_ref = common_pb2.ModelRef(name=model.name, content_hash=model.content_hash)
        self.args = args
        self.throughput = Throughput()

    def sampling(self, prompt: Prompt, max_new_tokens: int) -> ppb.SamplingParams:
        return ppb.SamplingParams(
            max_new_tokens=max_new_tokens,
            temperature=self.args.temperature,
            top_p=self.args.top_p,
            seed=prompt.seed,
            stop_at_eos=True,
        )

    def generate(
        self,
        prompt: Prompt,
        interventions: Sequence[ppb.Intervention],
        *,
        control: bool,
        max_new_tokens: int,
    ) -> tuple[Continuation, Continuation | None]:
        """(perturbed, control or None): each arm's whole continuation from its `done` message."""
        request = ppb.GenerateRequest(
            model=self.model_ref,
            interventions=list(interventions),
            sampling=self.sampling(prompt, max_new_tokens),
            control=control,
            **(prompt.input_fields() or {"prompt": det.DetectInput(text=prompt.text)}),
        )
        started = time.perf_counter()
        arms: dict[int, Continuation] = {}
        for message in self.cs.generate(request):
            if message.done:
                arms[message.arm] = Continuation(message.text, message.step)
        self.throughput.seconds += time.perf_counter() - started
        self.throughput.tokens += sum(c.n_tokens for c in arms.values())
        self.throughput.requests += 1
        return arms[ppb.ARM_PERTURBED], arms.get(ppb.ARM_CONTROL)

    def perturb(
        self, prompt: Prompt, interventions: Sequence[ppb.Intervention], target: str
    ) -> tuple[float, float, float]:
        """(log p before, log p after, KL) of the next token `target`."""
        started = time.perf_counter()
        reply = self.cs.perturb(
            ppb.PerturbRequest(
                model=self.model_ref,
                interventions=list(interventions),
                target_tokens=[target],
                top_k=5,
                **(prompt.input_fields() or {"input": det.DetectInput(text=prompt.text)}),
            )
        )
        self.throughput.perturb_seconds += time.perf_counter() - started
        self.throughput.perturb_calls += 1
        return (
            reply.targets_before[0].logprob,
            reply.targets_after[0].logprob,
            reply.kl_divergence,
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def register(cs: Client) -> models_pb2.Model:
    """Register the demo model in float32 (reuse an earlier registration when it is READY)."""
    try:
        return cs.register_model(
            DEMO_MODEL_NAME, DEMO_MODEL_NAME, dtype="float32", wait=True, timeout=900
        )
    except ChunkscopeError as err:
        if err.reason != "ALREADY_EXISTS":
            raise
    model = cs.get_model(DEMO_MODEL_NAME)
    if model.state != models_pb2.MODEL_STATE_READY or model.dtype != "float32":
        cs.unregister_model(DEMO_MODEL_NAME)
        return cs.register_model(
            DEMO_MODEL_NAME, DEMO_MODEL_NAME, dtype="float32", wait=True, timeout=900
        )
    return model


def clean_previous_runs(cs: Client) -> None:
    stale = [d.id for d in cs.list_dictionaries() if d.description.startswith(DESCRIPTION_PREFIX)]
    for dictionary_id in stale:
        cs.delete_dictionary(dictionary_id)
    if stale:
        print(f"  deleted {len(stale)} dictionaries from earlier runs of this script")


def extract(
    cs: Client,
    model: models_pb2.Model,
    corpus: dict[str, Any],
    concepts: Sequence[str],
    args: argparse.Namespace,
) -> dict[str, dict[int, Chunk]]:
    """One PA extraction at every candidate hook point: concept -> block -> chunk."""
    request = dpb.ExtractDictionaryRequest(
        model=common_pb2.ModelRef(name=model.name, content_hash=model.content_hash),
        hook_points=[f"blocks.{b}.resid_post" for b in args.blocks],
        corpus=dpb.Corpus(texts=dpb.TextList(texts=corpus["train"])),
        heldout=dpb.Corpus(texts=dpb.TextList(texts=corpus["heldout"])),
        context=dpb.CONTEXT_POLICY_SENTENCE,
        description=f"{DESCRIPTION_PREFIX} PA for steering",
        population_averaging=dpb.PopulationAveragingParams(
            concepts=[dpb.ConceptWords(concept=c, words=corpus["concepts"][c]) for c in concepts],
            preset=dpb.PA_PRESET_AUTHORS,  # the radius of the samples, as this study measured
            n_samples=5,
            criterion=dpb.PA_CRITERION_ACCURACY,
            seed=args.seed,
        ),
    )
    dictionaries = cs.extract_dictionary(request, timeout=1800)
    chunks: dict[str, dict[int, Chunk]] = {c: {} for c in concepts}
    print(f"  {'hook point':<22} {'concept':<8} {'tau':>6} {'|C|':>4} {'r':>6} held-out TPR/FPR")
    for d in dictionaries:
        block = int(d.hook_point.split(".")[1])
        for e in d.entries:
            chunk = Chunk(
                d.id, e.id, d.hook_point, e.label, e.tau, e.n_neurons, e.threshold,
                e.heldout.tpr, e.heldout.fpr,
            )  # fmt: skip
            chunks[e.label][block] = chunk
            print(
                f"  {d.hook_point:<22} {e.label:<8} {e.tau:>6.3g} {e.n_neurons:>4} "
                f"{chunk.radius:>6.1f} {e.heldout.tpr:.2f}/{e.heldout.fpr:.4f}"
            )
    return chunks


def locate(cs: Client, api: Api, dictionary_id: str, prompts: list[Prompt]) -> list[Prompt]:
    """The server's tokenization of each prompt (Detect's char spans): the authors' positions."""
    request = det.DetectRequest(
        config=det.DetectionConfig(model=api.model_ref, dictionary_ids=[dictionary_id]),
        inputs=[det.DetectInput(text=p.text) for p in prompts],
    )
    reply = cs.detect(request)
    located = []
    for prompt, result in zip(prompts, reply.results, strict=True):
        tokens = list(result.tokens)
        n = result.n_tokens
        end = prompt.text.index(prompt.question) + len(prompt.question)
        last = max(i for i, t in enumerate(tokens) if t.char_start < end and t.char_end > 0)
        if last < 3:
            raise RuntimeError(f"question too short for the authors' positions: {prompt.question}")
        tail = tuple(i - n for i in range(last - 3, last))
        tail_tokens = tuple(tokens[i + n].token for i in tail)
        literal_tokens = tuple(tokens[i + n].token for i in LITERAL_INDICES)
        located.append(
            Prompt(prompt.question, prompt.text, prompt.seed, n, tail, tail_tokens, literal_tokens)
        )
    return located


# ----- experiments ------------------------------------------------------------------------------


@dataclass
class Arm:
    """Continuations of one arm over prompts, with the measures."""

    name: str
    texts: list[str] = field(default_factory=list)
    hits: list[bool] = field(default_factory=list)
    coherent: list[bool] = field(default_factory=list)
    on_topic: list[bool] = field(default_factory=list)  # filled by the sparse part only

    def add(self, text: str, pattern: re.Pattern[str], check: Callable[[str], Coherence]) -> None:
        self.texts.append(text)
        self.hits.append(bool(pattern.search(text)))
        self.coherent.append(check(text).ok)

    @property
    def n(self) -> int:
        return len(self.texts)

    @property
    def rate(self) -> float:
        return sum(self.hits) / self.n if self.n else float("nan")

    @property
    def coherent_rate(self) -> float:
        return sum(self.coherent) / self.n if self.n else float("nan")

    @property
    def coherent_hits(self) -> int:
        return sum(h and c for h, c in zip(self.hits, self.coherent, strict=True))


@dataclass
class LogProb:
    before: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)

    def add(self, values: tuple[float, float, float]) -> None:
        self.before.append(values[0])
        self.after.append(values[1])
        self.kl.append(values[2])

    def summary(self) -> str:
        if not self.before:
            return "–"
        b, a = statistics.fmean(self.before), statistics.fmean(self.after)
        return f"{b:.1f} → {a:.1f} ({a - b:+.1f})"

    @property
    def delta(self) -> float:
        return statistics.fmean(a - b for a, b in zip(self.after, self.before, strict=True))


@dataclass
class DevResult:
    concept: str
    hook_hits: dict[int, tuple[int, int, float]]  # block -> (coherent hits, hits, mean Δ log p)
    block: int
    alpha_hits: dict[float, tuple[int, int]]  # alpha factor -> (coherent hits, hits)
    alpha: float


@dataclass
class ActivationResult:
    concept: str
    target: str
    chunk: Chunk
    alpha: float
    control: Arm
    graft: Arm
    literal: Arm
    literal_control: Arm
    add: Arm
    add_control: Arm
    lp_graft: LogProb
    lp_literal: LogProb
    lp_add: LogProb
    questions: list[str]
    graft_echo: int = 0  # graft continuations with the word twice in a row


@dataclass
class InhibitionResult:
    concept: str
    target: str
    chunk: Chunk
    control: Arm
    project: Arm
    project_all: Arm
    inhibit: Arm
    inhibit_control: Arm
    lp_project: LogProb
    questions: list[str]


def target_token(word: str, tokenizer: Tokenizer) -> str:
    token = " " + word
    if not tokenizer.single_token(token):
        raise SystemExit(f"{token!r} is not one token of the vocabulary: choose another concept")
    return token


def run_dev(
    api: Api,
    chunks: dict[str, dict[int, Chunk]],
    concepts: Sequence[str],
    words: dict[str, list[str]],
    dev: list[Prompt],
    tokenizer: Tokenizer,
    check: Callable[[str], Coherence],
) -> dict[str, DevResult]:
    """Per concept: the hook point with the most coherent hits when grafting at the authors'
    positions (ties: larger mean Δ log p of the target), then the ADD strength there (ties: the
    smaller one)."""
    args = api.args
    results = {}
    for concept in concepts:
        pattern = word_pattern(words[concept])
        target = target_token(words[concept][0], tokenizer)
        hook_hits: dict[int, tuple[int, int, float]] = {}
        for block in args.blocks:
            chunk = chunks[concept][block]
            arm, lp = Arm("graft"), LogProb()
            for p in dev:
                ivs = [intervention(chunk, ACTIVATE, indices=p.tail)]
                text, _ = api.generate(p, ivs, control=False, max_new_tokens=args.dev_tokens)
                arm.add(text.text, pattern, check)
                lp.add(api.perturb(p, ivs, target))
            hook_hits[block] = (arm.coherent_hits, sum(arm.hits), lp.delta)
        block = max(args.blocks, key=lambda b: (hook_hits[b][0], hook_hits[b][2]))
        chunk = chunks[concept][block]
        alpha_hits: dict[float, tuple[int, int]] = {}
        for factor in args.alphas:
            arm = Arm("add")
            for p in dev:
                ivs = [
                    intervention(
                        chunk, ADD, all_prompt=True, generated=True, alpha=factor * chunk.radius
                    )
                ]
                text, _ = api.generate(p, ivs, control=False, max_new_tokens=args.dev_tokens)
                arm.add(text.text, pattern, check)
            alpha_hits[factor] = (arm.coherent_hits, sum(arm.hits))
        alpha = max(args.alphas, key=lambda a: (alpha_hits[a][0], -a))
        results[concept] = DevResult(concept, hook_hits, block, alpha_hits, alpha)
        hooks = ", ".join(f"{b}: {h[0]}/{h[1]} ({h[2]:+.1f})" for b, h in hook_hits.items())
        alphas = ", ".join(f"{a:g}r: {h[0]}/{h[1]}" for a, h in alpha_hits.items())
        print(
            f"  {concept:<8} graft coherent hits/hits (Δlogp) by block {hooks} -> block {block}; "
            f"ADD {alphas} -> {alpha:g}r  [{api.throughput.rate:.1f} tok/s]",
            flush=True,
        )
    return results


def run_activation(
    api: Api,
    chunks: dict[str, dict[int, Chunk]],
    dev: dict[str, DevResult],
    words: dict[str, list[str]],
    test: list[Prompt],
    tokenizer: Tokenizer,
    check: Callable[[str], Coherence],
) -> tuple[list[ActivationResult], dict[int, Continuation]]:
    args = api.args
    controls: dict[int, Continuation] = {}
    results = []
    for concept, d in dev.items():
        started = time.perf_counter()
        pattern = word_pattern(words[concept])
        target = target_token(words[concept][0], tokenizer)
        chunk = chunks[concept][d.block]
        alpha = d.alpha * chunk.radius
        r = ActivationResult(
            concept, target, chunk, d.alpha, Arm("control"), Arm("graft"), Arm("literal"),
            Arm("literal control"), Arm("add"), Arm("add control"), LogProb(), LogProb(), LogProb(),
            [p.question for p in test],
        )  # fmt: skip
        for i, p in enumerate(test):
            graft = [intervention(chunk, ACTIVATE, indices=p.tail)]
            out, ctrl = api.generate(
                p, graft, control=i not in controls, max_new_tokens=args.max_new_tokens
            )
            if ctrl is not None:
                controls[i] = ctrl
            r.control.add(controls[i].text, pattern, check)
            r.graft.add(out.text, pattern, check)
            r.lp_graft.add(api.perturb(p, graft, target))

            if i < args.add_n:
                add = [intervention(chunk, ADD, all_prompt=True, generated=True, alpha=alpha)]
                out, _ = api.generate(p, add, control=False, max_new_tokens=args.max_new_tokens)
                r.add.add(out.text, pattern, check)
                r.add_control.add(controls[i].text, pattern, check)
            add_prompt = [intervention(chunk, ADD, all_prompt=True, alpha=alpha)]
            r.lp_add.add(api.perturb(p, add_prompt, target))

            literal = [intervention(chunk, ACTIVATE, indices=LITERAL_INDICES)]
            r.lp_literal.add(api.perturb(p, literal, target))
            if i < args.literal_n:
                out, _ = api.generate(p, literal, control=False, max_new_tokens=args.max_new_tokens)
                r.literal.add(out.text, pattern, check)
                r.literal_control.add(controls[i].text, pattern, check)
        echo = echo_pattern(words[concept])
        r.graft_echo = sum(bool(echo.search(t)) for t in r.graft.texts)
        results.append(r)
        print(
            f"  {concept:<8} block {d.block}: n={r.control.n} control {r.control.rate:.2f} | "
            f"graft {r.graft.rate:.2f} | ADD {d.alpha:g}r {r.add.rate:.2f} | "
            f"literal [-4,-3,-2] {r.literal.rate:.2f} (n={r.literal.n}, control "
            f"{r.literal_control.rate:.2f}) | Δlogp graft {r.lp_graft.delta:+.1f} "
            f"({time.perf_counter() - started:.0f}s, {api.throughput.rate:.1f} tok/s)",
            flush=True,
        )
    return results, controls


def run_inhibition(
    api: Api,
    chunks: dict[str, dict[int, Chunk]],
    dev: dict[str, DevResult],
    words: dict[str, list[str]],
    prompts: dict[str, list[Prompt]],
    tokenizer: Tokenizer,
    check: Callable[[str], Coherence],
) -> list[InhibitionResult]:
    args = api.args
    results = []
    for concept, concept_prompts in prompts.items():
        started = time.perf_counter()
        pattern = word_pattern(words[concept])
        target = target_token(words[concept][0], tokenizer)
        chunk = chunks[concept][dev[concept].block]
        every = [chunks[concept][b] for b in args.blocks]
        r = InhibitionResult(
            concept, target, chunk, Arm("control"), Arm("project_out"), Arm("project_out all"),
            Arm("inhibit"), Arm("inhibit control"), LogProb(),
            [p.question for p in concept_prompts],
        )  # fmt: skip
        for i, p in enumerate(concept_prompts):
            project = [intervention(chunk, PROJECT_OUT, all_prompt=True, generated=True)]
            out, ctrl = api.generate(p, project, control=True, max_new_tokens=args.max_new_tokens)
            assert ctrl is not None
            r.control.add(ctrl.text, pattern, check)
            r.project.add(out.text, pattern, check)
            r.lp_project.add(
                api.perturb(p, [intervention(chunk, PROJECT_OUT, all_prompt=True)], target)
            )
            project_all = [
                intervention(c, PROJECT_OUT, all_prompt=True, generated=True) for c in every
            ]
            out, _ = api.generate(p, project_all, control=False, max_new_tokens=args.max_new_tokens)
            r.project_all.add(out.text, pattern, check)
            if i < args.inhibit_n:
                inhibit = [intervention(chunk, INHIBIT, all_prompt=True, generated=True)]
                out, _ = api.generate(p, inhibit, control=False, max_new_tokens=args.max_new_tokens)
                r.inhibit.add(out.text, pattern, check)
                r.inhibit_control.add(ctrl.text, pattern, check)
        results.append(r)
        print(
            f"  {concept:<8} block {dev[concept].block}: n={r.control.n} control "
            f"{r.control.rate:.2f} | PROJECT_OUT {r.project.rate:.2f} | PROJECT_OUT all blocks "
            f"{r.project_all.rate:.2f} | INHIBIT {r.inhibit.rate:.2f} (n={r.inhibit.n}) | "
            f"coherent {r.control.coherent_rate:.2f}/{r.project.coherent_rate:.2f}/"
            f"{r.project_all.coherent_rate:.2f}/{r.inhibit.coherent_rate:.2f} "
            f"({time.perf_counter() - started:.0f}s, {api.throughput.rate:.1f} tok/s)",
            flush=True,
        )
    return results


def check_determinism(
    api: Api, activation: list[ActivationResult], test: list[Prompt]
) -> tuple[bool, bool]:
    """Regenerate the last concept's graft on the first test prompt, control arm included."""
    r = activation[-1]
    p = test[0]
    graft = [intervention(r.chunk, ACTIVATE, indices=p.tail)]
    out, ctrl = api.generate(p, graft, control=True, max_new_tokens=api.args.max_new_tokens)
    assert ctrl is not None
    return out.text == r.graft.texts[0], ctrl.text == r.control.texts[0]


# ----- the report -------------------------------------------------------------------------------


def pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.2f}"


def rate_cell(arm: Arm) -> str:
    return f"{pct(arm.rate)} ({sum(arm.hits)}/{arm.n})"


def report(
    args: argparse.Namespace,
    *,
    dev: dict[str, DevResult],
    activation: list[ActivationResult],
    inhibition: list[InhibitionResult],
    chunks: dict[str, dict[int, Chunk]],
    prompts_dev: list[Prompt],
    prompts_test: list[Prompt],
    timer: Timer,
    api: Api,
    determinism: tuple[bool, bool],
    total_seconds: float,
) -> str:
    out: list[str] = []
    w = out.append
    command = (
        f".venv/bin/python scripts/effects.py --data-dir {shlex.quote(str(args.data_dir))} "
        f"--doc {shlex.quote(str(args.doc))}"
    )
    extra = [a for a in sys.argv[1:] if a not in ("--data-dir", "--doc")]
    extra = [a for a in extra if a not in (str(args.data_dir), str(args.doc))]
    if extra:
        command += " " + " ".join(shlex.quote(a) for a in extra)
    example_prompt = prompts_test[0]
    w("## Steering effects (SmolLM2-135M-Instruct)")
    w("")
    w(f"    {command}")
    w("")
    tp = api.throughput
    w(
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {total_seconds / 60:.1f} min on "
        f"{platform.machine()} CPU ({os.cpu_count()} cores visible; load average over the last "
        f"15 minutes {os.getloadavg()[2]:.1f}, other jobs included); {tp.tokens} tokens "
        f"generated in {tp.requests} Generate calls ({tp.seconds:.0f}s, {tp.rate:.1f} tokens/s "
        f"for both arms together), {tp.perturb_calls} Perturb calls ({tp.perturb_seconds:.0f}s); "
        f"the server used {tp.server_cpu_seconds:.0f}s of CPU time. Parts: "
        + ", ".join(f"{k} {v:.0f}s" for k, v in timer.parts.items())
        + ". Everything goes through the gRPC API (ExtractDictionary, Detect, Generate, Perturb) "
        "of a server started by the script; seeded, and on CPU the numbers repeat "
        f"(regenerating one request gave identical perturbed and control arms: "
        f"{'yes' if all(determinism) else 'NO'})."
    )
    w("")
    w("**Setup.**")
    w("")
    w(
        f"- Dictionaries: Population Averaging (n_samples 5, the authors' accuracy rule, sentence "
        f"context, seed {args.seed}) on docs/concepts.json's training paragraphs, at "
        f"{', '.join(f'blocks.{b}.resid_post' for b in args.blocks)}."
    )
    w(
        f"- Prompts: docs/prompts.json. {len(prompts_dev) + len(prompts_test)} neutral questions "
        f"in the spirit of TREC that mention none of the concepts: the first {len(prompts_dev)} "
        f"are the development subset, the other {len(prompts_test)} are reported. Each is the "
        "user turn of the model's chat template (applied client-side with transformers' "
        "AutoTokenizer from the model directory; the server tokenizes the formatted text)."
    )
    w(
        f"- Sampling, identical in both arms: temperature {args.temperature}, top_p {args.top_p}, "
        f"at most {args.max_new_tokens} new tokens, stop at the end-of-turn token, seed "
        f"{args.seed} + the prompt's index. The control arm (Generate's `control`) is the same "
        "for every concept (same prompt, sampling and seed), so it is generated once per prompt "
        "and reused. A continuation counts when it contains one of the concept's words (whole "
        "word, case-insensitive; the prompt is not searched)."
    )
    w(
        "- Interventions: **graft** = ACTIVATE at the authors' positions, the three tokens "
        "before the question's last token (they clamped the three tokens before the last token "
        f"of a bare question; here, e.g., {list(example_prompt.tail_tokens)} = indices "
        f"{list(example_prompt.tail)} of the formatted prompt), prefill only. **literal** = "
        "ACTIVATE at indices [-4, -3, -2] of the formatted prompt, which are template tokens "
        f"{list(example_prompt.literal_tokens)}. **ADD** = h += α·v on every prompt and every "
        "generated token, v the server's unit direction from the corpus' mean state to the "
        "entry's sample mean, α a multiple of r = √(Δ·|C|), the Euclidean radius implied by the "
        "entry's match threshold Δ. **PROJECT_OUT** removes the component of h − mean state "
        "along v; **INHIBIT** sets the entry's neurons to 0."
    )
    w(
        "- Log-probabilities: Perturb's next-token log-probability of the target token (the "
        "first word with a leading space, e.g. ' cheese') at the end of the formatted prompt, "
        "i.e. as the first token of the answer, averaged over prompts: before → after (change). "
        "For ADD the intervention covers the prompt only (Perturb has no generated tokens)."
    )
    w(
        "- Coherence (crude): a continuation is coherent when ≥ 75 % of its words are one token "
        "of the vocabulary (the tokenizer's, with a leading space), ≥ 45 % of its words are "
        "distinct, no word repeats more than twice in a row, 10–70 % are function words (the "
        "lower bound from ten words on) and ≤ 30 % of its word trigrams repeat an earlier one; "
        "answers under five words are judged on the vocabulary test only. It catches token "
        "soup, loops and 'cheese cheese cheese', not nonsense in fluent English."
    )
    w("")
    w("**Hook point and strength, chosen on the development subset.** Per concept and candidate "
      "hook point, the graft's continuations (at most "
      f"{args.dev_tokens} tokens, {len(prompts_dev)} prompts) that contain the word *and* pass "
      "the coherence check; ties go to the larger mean change of the target's log-probability. "
      "At the chosen hook point the ADD strength α is chosen the same way (ties: the smaller). "
      "The PA entries nearly all span every neuron (τ = 100 wins the sweep), so ACTIVATE "
      "replaces the whole residual stream at the grafted positions.")  # fmt: skip
    w("")
    header = " | ".join(f"block {b}" for b in args.blocks)
    w(f"| concept | {header} | chosen | τ, \\|C\\|, r | held-out TPR/FPR | ADD α on dev | α |")
    w("|---|" + "---|" * len(args.blocks) + "---|---|---|---|---|")
    for concept, d in dev.items():
        c = chunks[concept][d.block]
        cells = " | ".join(f"{d.hook_hits[b][0]}/{d.hook_hits[b][1]}" for b in args.blocks)
        alphas = ", ".join(f"{a:g}r: {h[0]}/{h[1]}" for a, h in d.alpha_hits.items())
        w(
            f"| {concept} | {cells} | {d.block} | {c.tau:g}, {c.n_neurons}, {c.radius:.0f} | "
            f"{c.heldout_tpr:.2f}/{c.heldout_fpr:.4f} | {alphas} | {d.alpha:g}r = "
            f"{d.alpha * c.radius:.0f} |"
        )
    w("")
    w("Cells: coherent continuations with the word / continuations with the word.")
    w("")
    w(f"### Activation: the word in the continuation ({len(prompts_test)} held-out prompts)")
    w("")
    w(
        "| concept | block | control | graft | ADD (control) | literal [-4,-3,-2] (control) "
        "| coherent control / graft / ADD | Δ log p graft | Δ log p ADD | Δ log p literal "
        "| paper (LLaMA-3-8B) |"
    )
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in activation:
        paper = PAPER_GRAFT.get(r.concept)
        paper_cell = f"{paper[0]:.2f} → {paper[1]:.2f}" if paper else "–"
        w(
            f"| {r.concept} | {r.chunk.hook_point.split('.')[1]} | {rate_cell(r.control)} | "
            f"{rate_cell(r.graft)} | {rate_cell(r.add)} ({pct(r.add_control.rate)}) | "
            f"{rate_cell(r.literal)} "
            f"({pct(r.literal_control.rate)}) | {pct(r.control.coherent_rate)} / "
            f"{pct(r.graft.coherent_rate)} / {pct(r.add.coherent_rate)} | "
            f"{r.lp_graft.summary()} | {r.lp_add.summary()} | {r.lp_literal.summary()} | "
            f"{paper_cell} |"
        )
    pooled = pool(activation)
    w(
        f"| **all** | | {pooled['control']} | {pooled['graft']} | {pooled['add']} "
        f"({pooled['add_control']}) | "
        f"{pooled['literal']} | {pooled['coherent']} | | | | {PAPER_POOLED[0]:.3f} → "
        f"{PAPER_POOLED[1]:.3f} (75 concepts) |"
    )
    w("")
    w(
        "Rates: fraction of continuations (hits/n); pooled rows give the 95 % Wilson interval. "
        f"ADD ran on the first {args.add_n} held-out prompts and the literal variant on the "
        f"first {args.literal_n} only (to fit the time budget; the control rate on those prompts "
        "in parentheses); their log-probabilities use all of them. "
        "The paper's control arm sampled with top_p 0.5 and its graft arm with top_p 0.9, "
        "searched the decoded prompt too and generated up to 200 tokens; here both arms share "
        "every sampling parameter."
    )
    w("")
    if inhibition:
        w("### Inhibition: prompts that make the model say the word")
        w("")
        w(
            "| concept | block | n | control | PROJECT_OUT | PROJECT_OUT, all candidate blocks | "
            "INHIBIT (control) | coherent control / PO / PO all / INHIBIT | Δ log p PO |"
        )
        w("|---|---|---|---|---|---|---|---|---|")
        for q in inhibition:
            w(
                f"| {q.concept} | {q.chunk.hook_point.split('.')[1]} | {q.control.n} | "
                f"{rate_cell(q.control)} | {rate_cell(q.project)} | {rate_cell(q.project_all)} | "
                f"{rate_cell(q.inhibit)} ({pct(q.inhibit_control.rate)}) | "
                f"{pct(q.control.coherent_rate)} / {pct(q.project.coherent_rate)} / "
                f"{pct(q.project_all.coherent_rate)} / {pct(q.inhibit.coherent_rate)} | "
                f"{q.lp_project.summary()} |"
            )
        w("")
        w(
            "All interventions act on every prompt token and every generated token; the hook "
            "point is the one chosen for the concept on the development subset, and 'all "
            f"candidate blocks' projects out each block's own entry at blocks "
            f"{', '.join(map(str, args.blocks))} at once. INHIBIT ran on the first "
            f"{args.inhibit_n} prompts only. The paper reports no inhibition rate to compare "
            "with (its freeze demo's output was not saved)."
        )
        w("")
    w("### Examples")
    w("")
    for line in examples(activation, inhibition):
        w(line)
    w("")
    w("### Commentary")
    w("")
    for line in commentary(args, activation, inhibition, dev):
        w(f"- {line}")
    return "\n".join(out)


def pool(activation: list[ActivationResult]) -> dict[str, str]:
    def cell(arms: list[Arm]) -> str:
        k = sum(sum(a.hits) for a in arms)
        n = sum(a.n for a in arms)
        if n == 0:
            return "–"
        lo, hi = wilson(k, n)
        return f"{k / n:.2f} [{lo:.2f}, {hi:.2f}]"

    def coherent(arms: list[Arm]) -> str:
        n = sum(a.n for a in arms)
        return pct(sum(sum(a.coherent) for a in arms) / n) if n else "–"

    return {
        "control": cell([r.control for r in activation]),
        "graft": cell([r.graft for r in activation]),
        "add": cell([r.add for r in activation]),
        "add_control": cell([r.add_control for r in activation]),
        "literal": cell([r.literal for r in activation]),
        "coherent": " / ".join(
            coherent([getattr(r, k) for r in activation]) for k in ("control", "graft", "add")
        ),
    }


def examples(activation: list[ActivationResult], inhibition: list[InhibitionResult]) -> list[str]:
    """Up to three: a graft, an ADD and an inhibition, each beside its control."""
    lines: list[str] = []

    def pick(ctrl: Arm, arm: Arm, want_hit: bool) -> int | None:
        for i in range(arm.n):
            if arm.hits[i] == want_hit and ctrl.hits[i] != want_hit and arm.coherent[i]:
                return i
        return None

    def show(title: str, question: str, ctrl: str, label: str, text: str) -> None:
        lines.append(f"*{title}* — “{question}”")
        lines.append("")
        lines.append(f"- control: {md_quote(ctrl)}")
        lines.append(f"- {label}: {md_quote(text)}")
        lines.append("")

    for r in activation:
        i = pick(r.control, r.graft, True)
        if i is not None:
            show(f"{r.concept}, graft at block {r.chunk.hook_point.split('.')[1]}",
                 r.questions[i], r.control.texts[i], "graft", r.graft.texts[i])  # fmt: skip
            break
    for r in activation[1:] + activation[:1]:
        i = pick(r.control, r.add, True)
        if i is not None:
            show(f"{r.concept}, ADD {r.alpha:g}r", r.questions[i], r.control.texts[i],
                 "ADD", r.add.texts[i])  # fmt: skip
            break
    for q in inhibition:
        i = pick(q.control, q.project, False)
        if i is not None:
            show(f"{q.concept}, PROJECT_OUT at block {q.chunk.hook_point.split('.')[1]}",
                 q.questions[i], q.control.texts[i], "PROJECT_OUT", q.project.texts[i])  # fmt: skip
            if q.inhibit.n:
                lines.append(f"INHIBIT on the same concept: {md_quote(q.inhibit.texts[0])}")
                lines.append("")
            break
    return lines


def commentary(
    args: argparse.Namespace,
    activation: list[ActivationResult],
    inhibition: list[InhibitionResult],
    dev: dict[str, DevResult],
) -> list[str]:
    notes = []

    def total(key: str) -> tuple[int, int]:
        arms = [getattr(r, key) for r in activation]
        return sum(sum(a.hits) for a in arms), sum(a.n for a in arms)

    ck, cn = total("control")
    gk, gn = total("graft")
    ak, an = total("add")
    ack, acn = total("add_control")
    lk, ln = total("literal")
    lck, lcn = total("literal_control")
    same = sum(
        text == ctrl
        for r in activation
        for text, ctrl in zip(r.literal.texts, r.literal_control.texts, strict=True)
    )
    lit_delta = statistics.fmean(r.lp_literal.delta for r in activation) if activation else 0.0
    graft_delta = statistics.fmean(r.lp_graft.delta for r in activation) if activation else 0.0
    sizes = [r.chunk.n_neurons for r in activation]
    span = f"{min(sizes)}–{max(sizes)}" if sizes and min(sizes) != max(sizes) else str(sizes[0])
    echoes = sum(r.graft_echo for r in activation)
    if cn:
        notes.append(
            f"Grafting at the authors' positions raised the share of continuations that say the "
            f"concept's word from {ck / cn:.2f} to {gk / gn:.2f} over {len(activation)} concepts "
            f"({cn} prompt-concept pairs), against the paper's 0.129 → 0.488 on LLaMA-3-8B; "
            f"ADD on every prompt and generated token gave {ak / max(an, 1):.2f} on {an} pairs "
            f"(control {ack / max(acn, 1):.2f} on the same). Share of coherent continuations "
            f"(control / graft / ADD): {pool(activation)['coherent']}."
        )
    chosen = Counter(d.block for d in dev.values())
    notes.append(
        "Development choice: block "
        + ", ".join(f"{b} for {n} concept(s)" for b, n in sorted(chosen.items()))
        + f", from {len(next(iter(dev.values())).hook_hits) if dev else 0} candidates on "
        f"{args.n_dev_used} prompts; with so few prompts the choice is noisy, and the held-out "
        "rates are the ones to read."
    )
    if ln:
        notes.append(
            f"Grafting the literal indices [-4, -3, -2] of the chat-formatted prompt hits the "
            f"template tokens, not the question: {lk}/{ln} continuations said the word (control "
            f"{lck}/{lcn}) and {same}/{ln} were word for word the control's answer. Perturb "
            f"still shows the target's log-probability rising there (mean {lit_delta:+.1f} "
            f"nats, against {graft_delta:+.1f} for the graft on the question's tokens). Where "
            "the graft goes matters as much as what is grafted."
        )
    notes.append(
        f"The chosen PA entries span {span} of the 576 neurons, so ACTIVATE overwrites (nearly) "
        "the whole residual stream at the three grafted positions with the concept's sample "
        "mean: the model reads the end of the question as if it were the concept's word. "
        f"{echoes}/{gn} graft continuations even repeat the word twice in a row ('The tallest "
        "mountain cheese cheese cheese is …'), i.e. the grafted positions are read back like "
        "tokens. This is closer to token substitution than to steering a sparse feature; "
        "the answers either talk about the concept instead of the question or answer the "
        "question with the word spliced in."
    )
    notes.append(
        "ADD has a narrow working range. While sizing the experiment (not part of this run), "
        "α = 0.5·r on generated tokens only changed nothing, and α ≥ 1.5·r (at blocks 8 and 16; "
        "2·r anywhere) turned answers into 'cheese cheese cheese' or function-word salad; "
        "adding on the prompt tokens too works at lower α than on generated tokens alone. "
        "The candidates here are 1·r and 1.25·r on prompt and generated tokens."
    )
    same_seed = [
        len({r.inhibit.texts[i] for r in inhibition}) == 1
        for i in range(min((r.inhibit.n for r in inhibition), default=0))
    ]
    for r in inhibition:
        notes.append(
            f"Inhibition, {r.concept}: the control arm said the word in {sum(r.control.hits)}/"
            f"{r.control.n} continuations; PROJECT_OUT of the entry's direction at block "
            f"{r.chunk.hook_point.split('.')[1]} brought that to {sum(r.project.hits)}/"
            f"{r.project.n} (all candidate blocks: {sum(r.project_all.hits)}/"
            f"{r.project_all.n}) with {r.project.coherent_rate:.2f} of the continuations passing "
            f"the coherence check (control {r.control.coherent_rate:.2f}). INHIBIT zeroes every "
            f"neuron the entry spans ({r.chunk.n_neurons} of 576), i.e. the whole residual stream "
            f"at every position: {sum(r.inhibit.hits)}/{r.inhibit.n} said the word, "
            f"{sum(r.inhibit.coherent)}/{r.inhibit.n} passed the coherence check: token soup, "
            "not answers (example above). The word disappears because the model is broken."
        )
    if len(inhibition) > 1 and same_seed:
        notes.append(
            f"INHIBIT's continuations are identical across the inhibition concepts for "
            f"{sum(same_seed)}/{len(same_seed)} prompt positions (same seed, different questions, "
            "different entries and hook points): with the whole residual stream zeroed at every "
            "position, the output depends on the seed alone, not on the prompt or the concept."
        )
    if inhibition:
        notes.append(
            "PROJECT_OUT keeps the text fluent (see the coherence column) but not always the "
            "meaning: many inhibited answers garble the name of the thing asked about or describe "
            "something unrelated (as in the example above), so the removed direction carries "
            "the topic, not only the word; the coherence check cannot tell."
        )
    n_test = activation[0].control.n if activation else 0
    half = (wilson(n_test // 2, n_test)[1] - wilson(n_test // 2, n_test)[0]) / 2 if n_test else 0
    notes.append(
        f"Small samples: with {n_test} prompts per concept a rate has a 95 % interval of up to "
        f"±{half:.2f}; the pooled intervals are in the table. The prompts, the model (135M "
        "parameters, a Q4_1 GGUF dequantised to float32), the corpus the entries were fitted "
        f"on (docs/concepts.json) and the answer length ({args.max_new_tokens} tokens, not 200) "
        "all differ from the paper's setting."
    )
    return notes


def write_block(
    doc: Path, block: str, start_marker: str = START_MARKER, end_marker: str = END_MARKER
) -> None:
    """Replace the block between the markers of `doc`, or append it (creating the file if
    needed); the rest of the file, other marked blocks included, is kept as it is."""
    body = f"{start_marker}\n{block.rstrip()}\n{end_marker}\n"
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == start_marker]
    ends = [i for i, line in enumerate(lines) if line.strip() == end_marker]
    if starts and ends and ends[-1] > starts[0]:
        new = "".join(lines[: starts[0]]) + body + "".join(lines[ends[-1] + 1 :])
    elif text:
        new = text.rstrip("\n") + "\n\n" + body
    else:
        new = body
    doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.with_name(doc.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(doc)


# ----- sparse against full-width entries (--parts sparse) ----------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way to choose the PA tolerance: the authors' best score, or a sparser set."""

    name: str
    sparsity_margin: float = 0.0
    max_neurons: int = 0


@dataclass
class SparseEntry:
    variant: str
    chunk: Chunk
    cv_tpr: float  # NaN when the server gave no cross-validated scores
    cv_fpr: float
    sweep: str  # the sweep's distinct neuron counts: "τ:|C|/train TPR", largest τ first


@dataclass
class SparseActivation:
    concept: str
    block: int
    target: str
    control: Arm
    arms: dict[str, Arm]  # variant -> graft continuations
    logprob: dict[str, LogProb]
    questions: list[str]


@dataclass
class SparseInhibition:
    concept: str
    block: int
    target: str
    control: Arm
    arms: dict[str, dict[str, Arm]]  # mode name -> variant -> continuations
    logprob: dict[str, dict[str, LogProb]]
    questions: list[str]


INHIBITION_MODES = {"PROJECT_OUT": PROJECT_OUT, "INHIBIT": INHIBIT}
# PA's direction runs from the corpus' center to the entry's sample mean over every neuron, so it
# does not depend on C: these modes are generated with the full-width entry only (Perturb, run for
# every variant, shows the same change).
C_INDEPENDENT = frozenset({"PROJECT_OUT"})


def newcombe_diff(k1: int, n1: int, k2: int, n2: int, z: float = 1.96) -> tuple[float, float]:
    """95 % interval of p1 − p2 for two proportions (Newcombe's hybrid score interval from the
    Wilson intervals of each; it treats the samples as independent, which for paired arms
    sharing prompts and seeds is the wider, conservative choice)."""
    if n1 == 0 or n2 == 0:
        return (-1.0, 1.0)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (max(-1.0, lo), min(1.0, hi))


def compare(name: str, k: int, n: int, base_k: int, base_n: int) -> str:
    """One variant against the full-width baseline: rates, Wilson intervals, the difference."""
    lo, hi = wilson(k, n)
    dlo, dhi = newcombe_diff(k, n, base_k, base_n)
    d = k / n - base_k / base_n if n and base_n else float("nan")
    return (
        f"{name} {k}/{n} = {k / max(n, 1):.2f} [{lo:.2f}, {hi:.2f}], difference to full width "
        f"{d:+.2f} [{dlo:+.2f}, {dhi:+.2f}]"
    )


def sweep_summary(entry: dpb.ChunkEntry, max_points: int = 8) -> str:
    """The sweep where |C| changes, largest τ first: 'τ:|C|/training TPR'."""
    points, seen = [], set()
    for p in entry.sweep:
        if p.n_neurons and p.n_neurons not in seen:
            seen.add(p.n_neurons)
            points.append(f"{p.tau:.3g}:{p.n_neurons}/{p.tpr:.2f}")
    return " ".join(points[:max_points])


def sparse_variants(args: argparse.Namespace) -> list[Variant]:
    variants = [Variant("full")]
    if args.sparse_margin > 0:
        variants.append(
            Variant(f"margin {args.sparse_margin:g}", sparsity_margin=args.sparse_margin)
        )
    for bound in args.sparse_max_neurons:
        variants.append(Variant(f"≤{bound} neurons", max_neurons=bound))
    return variants


def sparse_pa_params(
    corpus: dict[str, Any], concepts: Sequence[str], variant: Variant, args: argparse.Namespace
) -> dpb.PopulationAveragingParams:
    """Every parameter explicit, so that the entries do not depend on the server's defaults."""
    return dpb.PopulationAveragingParams(
        concepts=[dpb.ConceptWords(concept=c, words=corpus["concepts"][c]) for c in concepts],
        preset=dpb.PA_PRESET_AUTHORS,
        n_samples=args.sparse_n_samples,
        criterion=dpb.PA_CRITERION_TPR_AT_FPR,
        max_fpr=args.sparse_max_fpr,
        seed=args.seed,
        cv_folds=5,
        taus=args.sparse_taus,
        sparsity_margin=variant.sparsity_margin,
        max_neurons=variant.max_neurons,
    )


def extract_sparse(
    cs: Client,
    model: models_pb2.Model,
    corpus: dict[str, Any],
    concepts: Sequence[str],
    variants: Sequence[Variant],
    args: argparse.Namespace,
) -> tuple[dict[str, dict[int, dict[str, SparseEntry]]], list[str]]:
    """One PA extraction per variant: concept -> block -> variant -> entry; and the cells
    without an entry."""
    entries: dict[str, dict[int, dict[str, SparseEntry]]] = {
        c: {b: {} for b in args.sparse_blocks} for c in concepts
    }
    missing: list[str] = []
    print(f"  {'variant':<14} {'hook point':<20} {'concept':<8} {'tau':>6} {'|C|':>4} "
          "held-out TPR/FPR  CV TPR")  # fmt: skip
    for variant in variants:
        request = dpb.ExtractDictionaryRequest(
            model=common_pb2.ModelRef(name=model.name, content_hash=model.content_hash),
            hook_points=[f"blocks.{b}.resid_post" for b in args.sparse_blocks],
            corpus=dpb.Corpus(texts=dpb.TextList(texts=corpus["train"])),
            heldout=dpb.Corpus(texts=dpb.TextList(texts=corpus["heldout"])),
            context=dpb.CONTEXT_POLICY_SENTENCE,
            description=f"{DESCRIPTION_PREFIX} sparse study, {variant.name}",
            population_averaging=sparse_pa_params(corpus, concepts, variant, args),
        )
        for d in cs.extract_dictionary(request, timeout=1800):
            block = int(d.hook_point.split(".")[1])
            for e in d.entries:
                chunk = Chunk(
                    d.id, e.id, d.hook_point, e.label, e.tau, e.n_neurons, e.threshold,
                    e.heldout.tpr, e.heldout.fpr,
                )  # fmt: skip
                has_cv = e.HasField("cross_validated")
                entry = SparseEntry(
                    variant.name, chunk,
                    e.cross_validated.tpr if has_cv else float("nan"),
                    e.cross_validated.fpr if has_cv else float("nan"),
                    sweep_summary(e),
                )  # fmt: skip
                entries[e.label][block][variant.name] = entry
                print(
                    f"  {variant.name:<14} {d.hook_point:<20} {e.label:<8} {e.tau:>6.3g} "
                    f"{e.n_neurons:>4} {e.heldout.tpr:.2f}/{e.heldout.fpr:.4f}      "
                    f"{entry.cv_tpr:.2f}"
                )
            for cell in d.infeasible_cells:
                missing.append(f"{variant.name}, {d.hook_point}, {cell.concept}: {cell.message}")
                print(f"  {variant.name:<14} {d.hook_point:<20} no entry: {cell}")
    return entries, missing


def run_sparse_activation(
    api: Api,
    entries: dict[str, dict[int, dict[str, SparseEntry]]],
    concepts: Sequence[str],
    words: dict[str, list[str]],
    prompts: list[Prompt],
    tokenizer: Tokenizer,
    check: Callable[[str], Coherence],
) -> list[SparseActivation]:
    """ACTIVATE at the question's last words (the server resolves them) with each variant's
    entry; the control arm of a prompt is generated once and shared."""
    args = api.args
    controls: dict[int, Continuation] = {}
    results = []
    for block in args.sparse_blocks:
        for concept in concepts:
            started = time.perf_counter()
            pattern = word_pattern(words[concept])
            target = target_token(words[concept][0], tokenizer)
            by_variant = entries[concept][block]
            r = SparseActivation(
                concept, block, target, Arm("control"),
                {v: Arm(v) for v in by_variant}, {v: LogProb() for v in by_variant},
                [p.question for p in prompts],
            )  # fmt: skip
            for i, p in enumerate(prompts):
                for name, entry in by_variant.items():
                    graft = [intervention(entry.chunk, ACTIVATE, question_tail=True)]
                    out, ctrl = api.generate(
                        p, graft, control=i not in controls, max_new_tokens=args.sparse_tokens
                    )
                    if ctrl is not None:
                        controls[i] = ctrl
                    r.arms[name].add(out.text, pattern, check)
                    r.logprob[name].add(api.perturb(p, graft, target))
                r.control.add(controls[i].text, pattern, check)
            results.append(r)
            cells = " | ".join(
                f"{v} {sum(a.hits)}/{a.n} coh {a.coherent_rate:.2f} Δlogp {r.logprob[v].delta:+.1f}"
                for v, a in r.arms.items()
            )
            print(
                f"  {concept:<8} block {block}: control {sum(r.control.hits)}/{r.control.n} | "
                f"{cells} ({time.perf_counter() - started:.0f}s, {api.throughput.rate:.1f} tok/s)",
                flush=True,
            )
    return results


def run_sparse_inhibition(
    api: Api,
    entries: dict[str, dict[int, dict[str, SparseEntry]]],
    words: dict[str, list[str]],
    prompts: dict[str, list[Prompt]],
    tokenizer: Tokenizer,
    check: Callable[[str], Coherence],
) -> list[SparseInhibition]:
    """PROJECT_OUT and INHIBIT on every prompt and generated token, each variant's entry, on
    prompts that make the model say the word; one control arm per prompt."""
    args = api.args
    results = []
    for block in args.sparse_blocks:
        for concept, concept_prompts in prompts.items():
            started = time.perf_counter()
            pattern = word_pattern(words[concept])
            target = target_token(words[concept][0], tokenizer)
            by_variant = entries[concept][block]
            generated = {
                m: [v for v in by_variant if m not in C_INDEPENDENT or v == "full"]
                for m in INHIBITION_MODES
            }
            r = SparseInhibition(
                concept, block, target, Arm("control"),
                {m: {v: Arm(v) for v in generated[m]} for m in INHIBITION_MODES},
                {m: {v: LogProb() for v in by_variant} for m in INHIBITION_MODES},
                [p.question for p in concept_prompts],
            )  # fmt: skip
            for p in concept_prompts:
                stems = topic_stems(p.question, words[concept])
                ctrl_text: str | None = None
                for mode_name, mode in INHIBITION_MODES.items():
                    for name, entry in by_variant.items():
                        if name in r.arms[mode_name]:
                            every = [
                                intervention(entry.chunk, mode, all_prompt=True, generated=True)
                            ]
                            out, ctrl = api.generate(
                                p, every, control=ctrl_text is None,
                                max_new_tokens=args.sparse_tokens,
                            )  # fmt: skip
                            if ctrl is not None:
                                ctrl_text = ctrl.text
                            r.arms[mode_name][name].add(out.text, pattern, check)
                            r.arms[mode_name][name].on_topic.append(on_topic(out.text, stems))
                        prompt_only = [intervention(entry.chunk, mode, all_prompt=True)]
                        r.logprob[mode_name][name].add(api.perturb(p, prompt_only, target))
                assert ctrl_text is not None
                r.control.add(ctrl_text, pattern, check)
                r.control.on_topic.append(on_topic(ctrl_text, stems))
            results.append(r)
            cells = " | ".join(
                f"{m} {v} {sum(a.hits)}/{a.n} coh {a.coherent_rate:.2f} "
                f"answers without the word {answers_without_word(a)}"
                for m, arms in r.arms.items()
                for v, a in arms.items()
            )
            print(
                f"  {concept:<8} block {block}: control {sum(r.control.hits)}/{r.control.n} "
                f"coh {r.control.coherent_rate:.2f} | {cells} "
                f"({time.perf_counter() - started:.0f}s, {api.throughput.rate:.1f} tok/s)",
                flush=True,
            )
    return results


def topic_stems(question: str, exclude: Sequence[str]) -> frozenset[str]:
    """The question's content words (4 letters or more, no function word, none of `exclude`),
    each as its first five letters ('symphony' and 'symphonies' share 'symph')."""
    skip = {w.lower() for w in exclude}
    return frozenset(
        w[:5]
        for w in (x.lower() for x in WORD_RE.findall(question))
        if len(w) >= 4 and w not in FUNCTION_WORDS and w not in skip
    )


def on_topic(text: str, stems: frozenset[str]) -> bool:
    """Crude: the continuation names what the question asks about (one of its content words);
    true when the question has none (e.g. 'What is music?' without the concept's word)."""
    if not stems:
        return True
    return any(w.lower()[:5] in stems for w in WORD_RE.findall(text) if len(w) >= 4)


def answers_without_word(arm: Arm) -> int:
    """Continuations that pass the coherence check, stay on the question's topic and do not say
    the word: inhibition's success (a broken model also stops saying the word)."""
    return sum(
        (not h) and c and t for h, c, t in zip(arm.hits, arm.coherent, arm.on_topic, strict=True)
    )


def coherent_hits(arm: Arm) -> int:
    return arm.coherent_hits


def pooled(arms: Sequence[Arm], count: Callable[[Arm], int]) -> tuple[int, int]:
    return sum(count(a) for a in arms), sum(a.n for a in arms)


def verdict(
    what: str,
    counts: dict[str, tuple[int, int]],
    measure: str,
    control: tuple[int, int] | None = None,
) -> list[str]:
    """Which variant to use, from pooled success counts (variant -> (k, n)) against 'full':
    a variant is better (worse) when the 95 % interval of its difference lies above (below) 0.
    With `control` (the no-intervention arm's counts), a variant better than full width is only
    recommended when it is also better than no intervention."""
    base_k, base_n = counts["full"]
    lo, hi = wilson(base_k, base_n)
    parts = [f"full {base_k}/{base_n} = {base_k / max(base_n, 1):.2f} [{lo:.2f}, {hi:.2f}]"]
    better: list[str] = []
    worse: list[str] = []
    tied: list[str] = []
    for v, (k, n) in counts.items():
        if v == "full":
            continue
        parts.append(compare(v, k, n, base_k, base_n))
        dlo, dhi = newcombe_diff(k, n, base_k, base_n)
        (better if dlo > 0 else worse if dhi < 0 else tied).append(v)
    lines = [f"{what}, pooled {measure}: " + "; ".join(parts) + "."]
    best = max(better, key=lambda v: counts[v][0] / max(counts[v][1], 1)) if better else ""
    if better and control is not None and newcombe_diff(*counts[best], *control)[0] <= 0:
        advice = (
            f"**{what}: no width does better than no intervention**; {best} beats full width, "
            "but the 95 % interval of its difference to the control arm includes 0"
        )
    elif better:
        advice = (
            f"**{what}: use the {best} entries**; the 95 % interval of the difference to full "
            "width lies above 0"
        )
    elif not tied:
        advice = (
            f"**{what}: use full-width entries**; every sparse variant's difference interval "
            "lies below 0"
        )
    elif worse:
        advice = (
            f"**{what}: use full-width entries** (or {', '.join(tied)}, not distinguishable "
            f"from full width at this size); {', '.join(worse)} "
            + (
                "is worse, its difference interval lies"
                if len(worse) == 1
                else "are worse, their difference intervals lie"
            )
            + " below 0"
        )
    else:
        advice = (
            f"**{what}: no sparse variant is distinguishable from full width at this size** "
            "(every difference interval contains 0)"
        )
    return [*lines, advice + "."]


def sparse_report(
    args: argparse.Namespace,
    *,
    variants: Sequence[Variant],
    entries: dict[str, dict[int, dict[str, SparseEntry]]],
    missing: list[str],
    activation: list[SparseActivation],
    inhibition: list[SparseInhibition],
    n_activation_prompts: int,
    timer: Timer,
    api: Api,
    total_seconds: float,
) -> str:
    out: list[str] = []
    w = out.append
    names_ = [v.name for v in variants]
    tp = api.throughput
    w("## Sparse against full-width PA entries (SmolLM2-135M-Instruct)")
    w("")
    w("    " + " ".join(shlex.quote(a) for a in [".venv/bin/python", "scripts/effects.py",
                                                    *sys.argv[1:]]))  # fmt: skip
    w("")
    w(
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {total_seconds / 60:.1f} min on "
        f"{platform.machine()} CPU ({os.cpu_count()} cores visible; load average over the last "
        f"15 minutes {os.getloadavg()[2]:.1f}, other jobs included); {tp.tokens} tokens in "
        f"{tp.requests} Generate calls ({tp.seconds:.0f}s), {tp.perturb_calls} Perturb calls "
        f"({tp.perturb_seconds:.0f}s). Parts: "
        + ", ".join(f"{k} {v:.0f}s" for k, v in timer.parts.items())
        + ". Through the gRPC API of a server started by the script, seeded."
    )
    w("")
    w("**Setup.**")
    w("")
    w(
        f"- Entries: one PA extraction per variant at "
        f"{', '.join(f'blocks.{b}.resid_post' for b in args.sparse_blocks)} on docs/concepts.json "
        f"(sentence context), all parameters explicit: preset AUTHORS (the radius of the "
        f"samples), n_samples {args.sparse_n_samples}, "
        f"criterion TPR_AT_FPR with max_fpr {args.sparse_max_fpr:g}, seed {args.seed}, 5-fold "
        f"cross-validation, τ grid {{{', '.join(f'{t:g}' for t in args.sparse_taus)}}} (finer "
        "than the default between 3 and 1, where |C| falls from ~500 to ~50; the default's "
        "τ < 0.64 give sets of a few neurons whose training TPR is their own samples matching). "
        "**full** = sparsity_margin 0, no max_neurons "
        "(the best training TPR, ties to the larger τ: the authors' choice)"
        + (f"; **margin {args.sparse_margin:g}** = the τ with the fewest neurons whose TPR is "
           f"within {args.sparse_margin:g} of the best" if args.sparse_margin > 0 else "")
        + "".join(f"; **≤{b} neurons** = max_neurons {b}" for b in args.sparse_max_neurons)
        + (" (only τ whose set has at most that many neurons compete)"
           if args.sparse_max_neurons else "")
        + ". The TPR criterion is used because the accuracy of the authors' rule differs by "
        "< 0.01 between τ (the negatives dominate), so a margin on it would mean nothing; at "
        "full width both rules choose the same τ here."
    )  # fmt: skip
    w(
        f"- ACTIVATE: the first {n_activation_prompts} held-out neutral questions of "
        "docs/prompts.json (after its development subset), the entry grafted at the three "
        "tokens before the question's last (Positions.message_tail, resolved by the server), "
        "prefill only. INHIBIT and PROJECT_OUT: docs/prompts.json's prompts that make the model "
        f"say the word ({args.sparse_n_inhibition or 'all'} per concept), on every prompt and "
        "generated token."
    )
    w(
        f"- Prompts go as chat messages (the server applies the model's template). Sampling, "
        f"identical in every arm: temperature {args.temperature}, top_p {args.top_p}, at most "
        f"{args.sparse_tokens} new tokens, stop at end of turn, seed {args.seed} + the prompt's "
        "index; one control arm per prompt (Generate's `control`), shared by all variants. A "
        "hit is one of the concept's words in the continuation (whole word, case-insensitive); "
        "coherence is the main study's crude check (above). Δ log p: Perturb's change of the "
        "target token's next-token log-probability at the end of the prompt (mean over prompts; "
        "for inhibition the intervention covers the prompt only)."
    )
    w("")
    w("**Entries.**")
    w("")
    w(
        "| concept | block | variant | τ | \\|C\\| | held-out TPR/FPR | CV TPR "
        "| sweep (τ:\\|C\\|/training TPR) |"
    )
    w("|---|---|---|---|---|---|---|---|")
    for concept, blocks in entries.items():
        for block, by_variant in blocks.items():
            for name in names_:
                e = by_variant.get(name)
                if e is None:
                    w(f"| {concept} | {block} | {name} | – | no entry | | | |")
                    continue
                sweep = e.sweep if name == "full" else ""
                w(
                    f"| {concept} | {block} | {name} | {e.chunk.tau:.3g} | {e.chunk.n_neurons} | "
                    f"{e.chunk.heldout_tpr:.2f}/{e.chunk.heldout_fpr:.4f} | {pct(e.cv_tpr)} | "
                    f"{sweep} |"
                )
    for line in missing:
        w(f"\nNo entry: {line}")
    w("")
    w(f"### ACTIVATE ({n_activation_prompts} neutral prompts per concept)")
    w("")
    w("| concept | block | control | " + " | ".join(names_) + " | coherent: control / "
      + " / ".join(names_) + " | Δ log p: " + " / ".join(names_) + " |")  # fmt: skip
    w("|---|---|---|" + "---|" * len(names_) + "---|---|")
    for r in activation:
        w(
            f"| {r.concept} | {r.block} | {rate_cell(r.control)} | "
            + " | ".join(rate_cell(r.arms[v]) if v in r.arms else "–" for v in names_)
            + f" | {pct(r.control.coherent_rate)} / "
            + " / ".join(pct(r.arms[v].coherent_rate) if v in r.arms else "–" for v in names_)
            + " | "
            + " / ".join(f"{r.logprob[v].delta:+.1f}" if v in r.logprob else "–" for v in names_)
            + " |"
        )
    act_hits = {v: pooled([r.arms[v] for r in activation if v in r.arms], lambda a: sum(a.hits))
                for v in names_}  # fmt: skip
    act_coh = {v: pooled([r.arms[v] for r in activation if v in r.arms], coherent_hits)
               for v in names_}  # fmt: skip
    ctrl_k, ctrl_n = pooled([r.control for r in activation], lambda a: sum(a.hits))
    w(
        f"| **all** | | {ctrl_k}/{ctrl_n} | "
        + " | ".join(
            f"{k}/{n} [{wilson(k, n)[0]:.2f}, {wilson(k, n)[1]:.2f}]" for k, n in act_hits.values()
        )
        + " | | |"
    )
    w("")
    w("Cells: continuations with the word / continuations; the pooled row gives the 95 % Wilson "
      "interval.")  # fmt: skip
    w("")
    if inhibition:
        w("### INHIBIT and PROJECT_OUT (prompts that make the model say the word)")
        w("")
        w("| concept | block | mode | control | " + " | ".join(names_) + " | coherent: control / "
          + " / ".join(names_) + " | on topic: control / " + " / ".join(names_)
          + " | answers without the word: control / " + " / ".join(names_)
          + " | Δ log p: " + " / ".join(names_) + " |")  # fmt: skip
        w("|---|---|---|---|" + "---|" * len(names_) + "---|---|---|---|")
        for q in inhibition:
            for mode_name, arms in q.arms.items():
                lps = q.logprob[mode_name]
                w(
                    f"| {q.concept} | {q.block} | {mode_name} | {rate_cell(q.control)} | "
                    + " | ".join(rate_cell(arms[v]) if v in arms else "= full" for v in names_)
                    + f" | {pct(q.control.coherent_rate)} / "
                    + " / ".join(
                        pct(arms[v].coherent_rate) if v in arms else "= full" for v in names_
                    )
                    + f" | {pct(sum(q.control.on_topic) / q.control.n)} / "
                    + " / ".join(
                        pct(sum(arms[v].on_topic) / arms[v].n) if v in arms else "= full"
                        for v in names_
                    )
                    + f" | {answers_without_word(q.control)}/{q.control.n} / "
                    + " / ".join(
                        f"{answers_without_word(arms[v])}/{arms[v].n}" if v in arms else "= full"
                        for v in names_
                    )
                    + " | "
                    + " / ".join(f"{lps[v].delta:+.1f}" if v in lps else "–" for v in names_)
                    + " |"
                )
        w("")
        w(
            "Cells: continuations that still say the word / continuations. **On topic** "
            "(crude): the continuation names what the question asks about (one of its content "
            "words, compared on their first five letters; the concept's words excluded; a "
            "question with no other content word counts as on topic). The "
            "coherence check alone passes word lists such as ' forward life. heartbeat, men. "
            "daily, per.' that INHIBIT produces with most neurons zeroed; an **answer without "
            "the word** is coherent, on topic and free of the word. '= full': "
            f"{', '.join(sorted(C_INDEPENDENT))} moves along a direction that does not depend "
            "on C, so only the full-width entry was generated."
        )
        w("")
    w("### Which to use")
    w("")
    notes = verdict(
        "ACTIVATE", act_coh, "continuations that say the word and pass the coherence check"
    )
    for line in notes:
        w(f"- {line}")
    for mode_name in INHIBITION_MODES:
        if not inhibition:
            break
        if mode_name in C_INDEPENDENT:
            k, n = pooled([q.arms[mode_name]["full"] for q in inhibition], answers_without_word)
            lo, hi = wilson(k, n)
            w(
                f"- {mode_name}: the direction (corpus center to the entry's sample mean, over "
                "every neuron) does not depend on C, so sparse and full-width entries do the "
                f"same (Perturb's Δ log p per variant above); pooled answers without the word "
                f"{k}/{n} = {k / max(n, 1):.2f} [{lo:.2f}, {hi:.2f}]."
            )
            continue
        counts = {
            v: pooled([q.arms[mode_name][v] for q in inhibition if v in q.arms[mode_name]],
                      answers_without_word)
            for v in names_
        }  # fmt: skip
        ck, cn = pooled([q.control for q in inhibition], answers_without_word)
        for line in verdict(
            mode_name, counts, "answers without the word (coherent, on topic, word absent)",
            control=(ck, cn),
        ):  # fmt: skip
            w(f"- {line}")
        best = max(counts, key=lambda v: counts[v][0] / max(counts[v][1], 1))
        bk, bn = counts[best]
        clo, chi = newcombe_diff(bk, bn, ck, cn)
        said_k, said_n = pooled(
            [q.arms[mode_name][best] for q in inhibition], lambda a: sum(a.hits)
        )
        ctrl_said = pooled([q.control for q in inhibition], lambda a: sum(a.hits))
        w(
            f"- The best {mode_name} ({best}) against no intervention (the control arm, whose "
            f"answers lack the word {ck}/{cn} times): difference "
            f"{bk / max(bn, 1) - ck / max(cn, 1):+.2f} "
            f"[{clo:+.2f}, {chi:+.2f}]; it still says the word in {said_k}/{said_n} continuations "
            f"(control {ctrl_said[0]}/{ctrl_said[1]})"
            + (". **No width of INHIBIT removes the word and keeps an answer**: the wide entries "
               "break the model, the narrow ones leave the word." if clo <= 0 else ".")
        )  # fmt: skip
        if C_INDEPENDENT:
            po = next(iter(sorted(C_INDEPENDENT)))
            pk, pn = pooled([q.arms[po]["full"] for q in inhibition], answers_without_word)
            dlo, dhi = newcombe_diff(pk, pn, bk, bn)
            w(
                f"- {po} against the best {mode_name} ({best}): answers without the word "
                f"{pk}/{pn} against {bk}/{bn}, difference {pk / max(pn, 1) - bk / max(bn, 1):+.2f}"
                f" [{dlo:+.2f}, {dhi:+.2f}]"
                + (
                    f". **To remove a word, use {po}** (any width: its direction does not depend "
                    "on C)."
                    if dlo > 0
                    else "."
                )
            )
    half = wilson(n_activation_prompts // 2, n_activation_prompts)
    w(
        f"- Differences are Newcombe 95 % intervals treating the arms as independent (they share "
        f"prompts and seeds, so the paired truth is narrower); with {n_activation_prompts} prompts "
        f"a single concept's rate has an interval up to ±{(half[1] - half[0]) / 2:.2f}, hence "
        "the pooled verdicts."
    )
    return "\n".join(out)


def run_sparse_part(
    cs: Client,
    model: models_pb2.Model,
    corpus: dict[str, Any],
    spec: dict[str, Any],
    tokenizer: Tokenizer,
    check: Callable[[str], Coherence],
    args: argparse.Namespace,
    timer: Timer,
) -> None:
    """Sparse against full-width entries; writes its own marked block and results file."""
    started = time.perf_counter()
    words: dict[str, list[str]] = corpus["concepts"]
    variants = sparse_variants(args)
    concepts = list(dict.fromkeys(args.sparse_concepts + args.sparse_inhibition_concepts))
    n_dev = args.n_dev or int(spec["n_dev"])
    neutral = spec["neutral"]
    activation_prompts = [
        Prompt(q, "", args.seed + i, server_chat=True) for i, q in enumerate(neutral) if i >= n_dev
    ][: args.sparse_n_test or None]
    inhibition_prompts = {
        c: [
            Prompt(q, "", args.seed + i, server_chat=True)
            for i, q in enumerate(spec["inhibition"][c][: args.sparse_n_inhibition or None])
        ]
        for c in args.sparse_inhibition_concepts
    }
    api = Api(cs, model, args)
    entries, missing = timer.run(
        "S1. ExtractDictionary (PA, one per variant)",
        lambda: extract_sparse(cs, model, corpus, concepts, variants, args),
    )
    activation = timer.run(
        "S2. ACTIVATE",
        lambda: run_sparse_activation(
            api, entries, args.sparse_concepts, words, activation_prompts, tokenizer, check
        ),
    )
    inhibition = timer.run(
        "S3. INHIBIT and PROJECT_OUT",
        lambda: run_sparse_inhibition(api, entries, words, inhibition_prompts, tokenizer, check),
    )
    total = time.perf_counter() - started
    results_path = args.data_dir / "effects" / "sparse.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "variants": [asdict(v) for v in variants],
                "entries": {
                    c: {str(b): {v: asdict(e) for v, e in bv.items()} for b, bv in blocks.items()}
                    for c, blocks in entries.items()
                },
                "missing": missing,
                "activation": [asdict(r) for r in activation],
                "inhibition": [asdict(r) for r in inhibition],
                "throughput": asdict(api.throughput),
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    block = sparse_report(
        args, variants=variants, entries=entries, missing=missing, activation=activation,
        inhibition=inhibition, n_activation_prompts=len(activation_prompts), timer=timer,
        api=api, total_seconds=total,
    )  # fmt: skip
    write_block(args.doc, block, SPARSE_START_MARKER, SPARSE_END_MARKER)
    print(f"\nwrote the sparse block into {args.doc}; continuations in {results_path}")


# ----- main -------------------------------------------------------------------------------------


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="server data dir")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "REPRODUCTION.md")
    parser.add_argument(
        "--model-root",
        type=Path,
        default=None,
        help="directory holding smollm2-135m-instruct (default: <data-dir>/models if it has the "
        "model, else the repository's data/models)",
    )
    parser.add_argument("--prompts", type=Path, default=REPO / "docs" / "prompts.json")
    parser.add_argument("--concepts", type=Path, default=REPO / "docs" / "concepts.json")
    parser.add_argument(
        "--activation-concepts", type=names, default=names("cheese,cake,school,music,doctor")
    )
    parser.add_argument("--inhibition-concepts", type=names, default=names("cheese,music"))
    parser.add_argument("--blocks", type=ints, default=ints("8,12,16,20"), help="candidates")
    parser.add_argument(
        "--alphas", type=floats, default=floats("1,1.25"), help="ADD strengths, × r"
    )
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--dev-tokens", type=int, default=16, help="new tokens on the dev subset")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-dev", type=int, default=0, help="dev prompts (0: the file's n_dev)")
    parser.add_argument("--n-test", type=int, default=0, help="held-out prompts at most (0: all)")
    parser.add_argument("--n-inhibition", type=int, default=0, help="prompts per concept (0: all)")
    parser.add_argument("--add-n", type=int, default=16, help="held-out prompts for ADD")
    parser.add_argument("--literal-n", type=int, default=6, help="prompts for the literal graft")
    parser.add_argument("--inhibit-n", type=int, default=3, help="prompts for INHIBIT")
    parser.add_argument(
        "--parts",
        type=names,
        default=list(PARTS),
        help="parts to run, comma-separated: main (the effects study), sparse (sparse against "
        "full-width entries; its own block in --doc); default all",
    )
    sparse = parser.add_argument_group("sparse part")
    sparse.add_argument("--sparse-concepts", type=names, default=names("cheese,river,music,school"))
    sparse.add_argument("--sparse-inhibition-concepts", type=names, default=names("cheese,music"))
    sparse.add_argument("--sparse-blocks", type=ints, default=ints("8"), help="hook points")
    sparse.add_argument("--sparse-margin", type=float, default=0.1, help="sparsity_margin")
    sparse.add_argument(
        "--sparse-max-neurons",
        type=ints,
        default=ints("256,64"),
        help="max_neurons, one variant each",
    )
    sparse.add_argument(
        "--sparse-taus",
        type=floats,
        default=floats("100,30,20,10,5,4,3,2.5,2,1.75,1.5,1.25,1,0.8,0.64"),
        help="the τ grid of every variant (explicit: finer than the default between 3 and 1, "
        "and without the τ < 0.64 whose sets of a few neurons match only their own samples)",
    )
    sparse.add_argument("--sparse-n-samples", type=int, default=5)
    sparse.add_argument("--sparse-max-fpr", type=float, default=0.001)
    sparse.add_argument("--sparse-tokens", type=int, default=24, help="new tokens per arm")
    sparse.add_argument(
        "--sparse-n-test", type=int, default=10, help="neutral held-out prompts (0: all)"
    )
    sparse.add_argument(
        "--sparse-n-inhibition", type=int, default=12, help="prompts per concept (0: all)"
    )
    args = parser.parse_args(argv)
    unknown_parts = set(args.parts) - set(PARTS)
    if unknown_parts or not args.parts:
        parser.error(f"--parts: choose from {', '.join(PARTS)} (got {args.parts})")
    if args.model_root is None:
        local = args.data_dir / "models"
        args.model_root = local if (local / DEMO_MODEL_NAME).is_dir() else REPO / "data" / "models"
    missing = set(args.inhibition_concepts) - set(args.activation_concepts)
    if missing and "main" in args.parts:
        parser.error(f"inhibition concepts need a hook point chosen by activation: {missing}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    timer = Timer()
    corpus = json.loads(args.concepts.read_text(encoding="utf-8"))
    spec = json.loads(args.prompts.read_text(encoding="utf-8"))
    words: dict[str, list[str]] = corpus["concepts"]
    wanted = set(args.activation_concepts) if "main" in args.parts else set()
    if "sparse" in args.parts:
        wanted |= set(args.sparse_concepts) | set(args.sparse_inhibition_concepts)
        no_prompts = set(args.sparse_inhibition_concepts) - set(spec["inhibition"])
        if no_prompts:
            raise SystemExit(f"no inhibition prompts in {args.prompts} for {sorted(no_prompts)}")
    unknown = wanted - set(words)
    if unknown:
        raise SystemExit(f"not in {args.concepts}: {sorted(unknown)}")
    model_dir = args.model_root / DEMO_MODEL_NAME
    tokenizer = Tokenizer(model_dir)
    check = make_coherence(tokenizer)

    print(f"starting chunkscope (data dir {args.data_dir}, model root {args.model_root}) ...")
    server: ServerProcess = timer.run(
        "0. server start",
        lambda: spawn_server(
            args.data_dir, "--model-roots", str(args.model_root.resolve()), "--device", "cpu",
            "--dtype", "float32", "--grace-seconds", "10",
        ),
    )  # fmt: skip
    try:
        with Client.connect(server.address, timeout=600, token=server.token) as cs:
            model = timer.run("1. register SmolLM2", lambda: register(cs))
            clean_previous_runs(cs)
            if "main" in args.parts:
                run_main_part(cs, model, corpus, spec, tokenizer, check, args, timer, server)
            if "sparse" in args.parts:
                run_sparse_part(cs, model, corpus, spec, tokenizer, check, args, timer)
    finally:
        code = server.terminate()
        print(f"server stopped (exit {code}); its log: {server.log_path}")
    return 0


def run_main_part(
    cs: Client,
    model: models_pb2.Model,
    corpus: dict[str, Any],
    spec: dict[str, Any],
    tokenizer: Tokenizer,
    check: Callable[[str], Coherence],
    args: argparse.Namespace,
    timer: Timer,
    server: ServerProcess,
) -> None:
    """The effects study (steps 2-6 of the module's docstring); writes the main block."""
    started = time.perf_counter()
    words: dict[str, list[str]] = corpus["concepts"]
    n_dev = args.n_dev or int(spec["n_dev"])
    args.n_dev_used = n_dev
    neutral = [Prompt(q, tokenizer.chat(q), args.seed + i) for i, q in enumerate(spec["neutral"])]
    all_words = [w for c in words.values() for w in c]
    for p in neutral:
        if word_pattern(all_words).search(p.question):
            raise SystemExit(f"neutral prompt mentions a concept: {p.question!r}")
    dev_prompts, test_prompts = neutral[:n_dev], neutral[n_dev:]
    if args.n_test:
        test_prompts = test_prompts[: args.n_test]
    inhibition_prompts = {
        c: [
            Prompt(q, tokenizer.chat(q), args.seed + i)
            for i, q in enumerate(spec["inhibition"][c][: args.n_inhibition or None])
        ]
        for c in args.inhibition_concepts
    }
    concepts = list(dict.fromkeys(args.activation_concepts + args.inhibition_concepts))
    chunks = timer.run(
        "2. ExtractDictionary (PA)", lambda: extract(cs, model, corpus, concepts, args)
    )
    api = Api(cs, model, args)
    some_dictionary = next(iter(chunks[concepts[0]].values())).dictionary_id
    dev_prompts = locate(cs, api, some_dictionary, dev_prompts)
    test_prompts = locate(cs, api, some_dictionary, test_prompts)
    inhibition_prompts = {
        c: locate(cs, api, some_dictionary, ps) for c, ps in inhibition_prompts.items()
    }
    p = test_prompts[0]
    print(
        f"  authors' positions in {p.question!r}: {list(p.tail)} = {list(p.tail_tokens)}"
        f"; literal {list(LITERAL_INDICES)} = {list(p.literal_tokens)}"
    )
    dev = timer.run(
        "3. development subset: hook point and ADD strength",
        lambda: run_dev(
            api, chunks, args.activation_concepts, words, dev_prompts, tokenizer, check
        ),
    )
    activation, _ = timer.run(
        "4. activation (held-out prompts)",
        lambda: run_activation(api, chunks, dev, words, test_prompts, tokenizer, check),
    )
    inhibition = timer.run(
        "5. inhibition",
        lambda: run_inhibition(api, chunks, dev, words, inhibition_prompts, tokenizer, check),
    )
    determinism = timer.run(
        "6. determinism check", lambda: check_determinism(api, activation, test_prompts)
    )
    print(f"  regenerated perturbed / control arms identical: {determinism}")
    api.throughput.server_cpu_seconds = cpu_seconds(server.proc.pid)

    total_seconds = time.perf_counter() - started
    results_path = args.data_dir / "effects" / "results.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "dev": [asdict(d) for d in dev.values()],
                "activation": [asdict(r) for r in activation],
                "inhibition": [asdict(r) for r in inhibition],
                "throughput": asdict(api.throughput),
                "parts": timer.parts,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    block = report(
        args,
        dev=dev,
        activation=activation,
        inhibition=inhibition,
        chunks=chunks,
        prompts_dev=dev_prompts,
        prompts_test=test_prompts,
        timer=timer,
        api=api,
        determinism=determinism,
        total_seconds=total_seconds,
    )
    write_block(args.doc, block)
    print(f"\nwrote the effects block into {args.doc}; continuations in {results_path}")
    print(f"total {total_seconds / 60:.1f} min, {api.throughput.rate:.1f} tokens/s")


if __name__ == "__main__":
    raise SystemExit(main())
