"""Every rule of the checker: id, short name, the rules.md section it enforces, its function.

The rule's documentation is its function's docstring; `python -m compliance explain RULE`
prints it. Ids group by area: L1xx layout, S2xx system declaration, G3xx LoadGen logs,
Q4xx quality, A5xx audits, T6xx traces, R8xx replay, B7xx the leaderboard, X9xx the checker itself.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Callable

from compliance.checks import (audits, code, copies, episodes, identity, layout, limits,
                               loadgen, provenance, quality, system, timing, traces)


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    anchor: str            # the rules.md section it enforces
    check: Callable | None  # None for the checker's own findings

    @property
    def doc(self) -> str:
        if self.check is None:
            return BUILTIN_DOCS[self.id]
        return inspect.getdoc(self.check) or ""


BUILTIN_DOCS = {
    "L104": "an archive member was refused: an absolute path, a '..' component, a link, "
            "a device or other special file, a member over the size limit, or too many members. "
            "Refused members are never extracted; nothing is written outside a temporary "
            "directory. An archive that cannot be read to its end (truncated or corrupt) is "
            "refused too, and every finding on what it lacks follows from that one.\n\n"
            "Why: a submission is opened without trusting it; a hostile archive must not write "
            "outside the checker's directory or fill the disk.\n\n"
            "Fix: archive the submission directory again, as plain files (`tar czf "
            "alice.tar.gz -C results/closed alice`), and check the archive before sending it "
            "(a truncated upload shows up as 'archive unreadable').",
    "B701": "leaderboard, needs reproduction: a result beyond its device class's expected "
            "bound (rules.yaml checker.device_classes: the reference's figure per core x "
            "min(declared, probed) cores x plausibility_max_ratio; a known accelerator's by "
            "its memory bandwidth), or on an accelerator the table does not know or the "
            "declaration omits, is ranked but marked 'needs reproduction' (leaderboard "
            "--reproduce N re-runs it).\n\n"
            "Why: a timing that every file agrees with is still only the submitter's word; "
            "beyond what the declared hardware can do, only a re-run can settle it.\n\n"
            "Fix: nothing to fix if the result is real: the instructor reproduces it "
            "(`python -m compliance reproduce`); declare the machine the run used.",
    "B702": "leaderboard, identical runs: two entries that share any run's evidence "
            "(a byte-identical detail log or agent trace, or a tenth of a performance run's "
            "episodes with the same sample and the same timings) are copies of one run; every "
            "member of the copy group is listed as flagged for review, with all the others "
            "named, and none is ranked. An entry sharing runs with the committed reference "
            "submission (results/closed/reference) is a copy of the reference; the reference "
            "itself, recognised by its runs' SHA-256 and its name, is the board's baseline "
            "row, never a copy and never ranked.\n\n"
            "Why: two honest runs never produce the same log bytes or the same per-episode "
            "timings; a copied run would rank someone else's work.\n\n"
            "Fix: run `make submission` on your own system (starting from a copy of the "
            "reference is fine, but its results must be replaced by your runs).",
    "B703": "leaderboard, one submitter one entry: a directory and an archive (or two "
            "archives) with the same submitter name, compared after NFKC, casefolding and "
            "a confusable skeleton (alice, Alice and a Cyrillic-a alice are one name), are "
            "both refused. An entry whose results name someone else is refused by B704 alone "
            "and never makes another entry a duplicate.",
    "B704": "leaderboard, the entry's name is its submitter: every result's "
            "measurements.json names the submitter the entry (directory or archive) is named "
            "after. An entry named 'reference' must hold the committed reference submission's "
            "runs.\n\n"
            "Why: the board names each entry by its submitter; a mismatch would credit the "
            "runs to someone else.\n\n"
            "Fix: name the directory or archive after the SUBMITTER you ran `make submission` "
            "with (results/<division>/<submitter>).",
    "R801": "replay (check --replay N [--replay-seed S]; leaderboard, rules.yaml "
            "checker.leaderboard_replay): N episodes of every run (accuracy, each split, "
            "performance, each audit) of every closed-division result, chosen by the "
            "checker's seed (fresh randomness printed in the report, or --replay-seed; a "
            "leaderboard draws one per course run; never derived from the submission), are "
            "re-run with the reference checkpoint (greedy) and must come out exactly as "
            "logged: every step's text, generated and context tokens, tool call and "
            "observation, the answer and the stop reason. At most "
            "floor(checker.replay_max_mismatch_fraction x N) of one run's may differ. A run "
            "with a fraction f of fabricated episodes escapes with probability at most "
            "(1 - f)^N: at the leaderboard's 22, f = 0.2 is caught with probability 0.9926.",
    "X901": "a rule raised an exception. This is a bug in the checker, not a verdict on "
            "the submission; the submission is reported invalid until it is fixed.",
}

REGISTRY: tuple[Rule, ...] = (
    Rule("L101", "required-files", "layout", layout.required_files),
    Rule("L102", "no-links-or-leftovers", "layout", layout.no_links_or_leftovers),
    Rule("L103", "known-names", "layout", layout.known_names),
    Rule("L104", "safe-archive", "layout", None),
    Rule("L105", "submitter-identity", "layout", identity.submitter_identity),
    Rule("L106", "code-bundle", "layout", code.code_bundle),
    Rule("S201", "declaration-schema", "hardware", system.declaration_schema),
    Rule("S202", "declaration-matches-probe", "hardware", system.declaration_matches_probe),
    Rule("S203", "probe-consistent", "hardware", system.probe_consistent),
    Rule("G301", "result-valid", "run-rules", loadgen.result_valid),
    Rule("G302", "no-loadgen-errors", "run-rules", loadgen.no_errors),
    Rule("G303", "official-seeds", "run-rules", loadgen.official_seeds),
    Rule("G304", "duration-and-counts", "run-rules", loadgen.duration_and_counts),
    Rule("G305", "server-latency-bound", "scenarios", loadgen.server_latency_bound),
    Rule("G306", "run-identity", "run-rules", loadgen.run_identity),
    Rule("G307", "measurements-agree", "run-rules", loadgen.measurements_agree),
    Rule("G308", "profile-eligible", "run-rules", loadgen.profile_eligible),
    Rule("G309", "loadgen-build-pinned", "run-rules", identity.loadgen_build_pinned),
    Rule("G310", "throughput-recomputed", "compliance", timing.throughput_recomputed),
    Rule("G311", "latency-recomputed", "compliance", timing.latency_recomputed),
    Rule("G312", "settings-agree", "compliance", identity.settings_agree),
    Rule("G313", "figures-bounded", "compliance", limits.figures_bounded),
    Rule("G314", "schedule-and-counts", "run-rules", limits.schedule_and_counts),
    Rule("G315", "run-not-older-than-code", "compliance", limits.run_dates),
    Rule("Q401", "accuracy-log-wellformed", "quality", quality.accuracy_log_wellformed),
    Rule("Q402", "sample-coverage", "quality", quality.sample_coverage),
    Rule("Q403", "quality-target", "quality", quality.quality_target),
    Rule("Q404", "accuracy-json-agrees", "quality", quality.accuracy_json_agrees),
    Rule("Q405", "reference-weights", "divisions", quality.reference_weights),
    Rule("Q408", "split-quality", "quality", quality.split_quality),
    Rule("Q409", "quality-bounds", "quality", quality.quality_bounds),
    Rule("Q406", "closed-answers-are-reference", "divisions",
         provenance.closed_answers_match_reference),
    Rule("Q407", "answers-computed", "divisions", provenance.answers_computed),
    Rule("A501", "test01-outputs-match", "audits", audits.test01_outputs_match),
    Rule("A502", "test04-no-caching", "audits", audits.test04_no_caching),
    Rule("A503", "test09-output-length", "audits", audits.test09_output_length),
    Rule("A504", "audit-runs-valid", "audits", audits.audit_runs_valid),
    Rule("T601", "trace-schema", "layout", traces.trace_schema),
    Rule("T602", "trace-matches-accuracy-log", "layout", traces.trace_matches_accuracy_log),
    Rule("T602", "trace-matches-performance-logs", "layout", traces.trace_matches_performance_logs),
    Rule("T603", "step-bounds", "benchmarks", traces.step_bounds),
    Rule("T604", "step-times-add-up", "layout", traces.step_times_add_up),
    Rule("T605", "tool-calls-reexecuted", "benchmarks", traces.tool_calls_reexecuted),
    Rule("T606", "trace-episodes-distinct", "compliance", episodes.trace_episodes_distinct),
    Rule("T607", "trace-self-consistent", "compliance", episodes.trace_self_consistent),
    Rule("T608", "performance-answers-match", "compliance", episodes.performance_answers_match),
    Rule("T609", "verification-budget", "compliance", traces.trace_budget),
    Rule("T610", "decode-speed-ceiling", "hardware", limits.decode_ceiling),
    Rule("T611", "samples-drawn-as-loadgen", "compliance", limits.sample_draws),
    Rule("T612", "performance-episodes-are-accuracy-episodes", "divisions",
         limits.performance_content_matches),
    Rule("T613", "not-the-reference", "compliance", copies.not_the_reference),
    Rule("R801", "replay", "divisions", None),
    Rule("B701", "needs-reproduction", "scoring", None),
    Rule("B702", "identical-runs", "scoring", None),
    Rule("B703", "one-entry-per-submitter", "scoring", None),
    Rule("B704", "entry-is-its-submitter", "scoring", None),
    Rule("X901", "checker-internal-error", "", None),
)
RULES_BY_ID: dict[str, list[Rule]] = {}
for _r in REGISTRY:  # one id may have several checks (T602: accuracy and performance runs)
    RULES_BY_ID.setdefault(_r.id, []).append(_r)


def markdown_table() -> str:
    """The rules table of rules.md section 9, generated from this registry."""
    rows = ["| id | name | enforces | what it checks |", "|---|---|---|---|"]
    for r in REGISTRY:
        doc = re.sub(r"^\([^)]*\):\s*", "", r.doc.replace("\n", " "))  # "(TEST01): ..."
        first = doc.split(". ")[0].rstrip(".")
        rows.append(f"| {r.id} | {r.name} | [{r.anchor or 'checker'}](#{r.anchor or 'compliance'}) "
                    f"| {first} |")
    return "\n".join(rows)
