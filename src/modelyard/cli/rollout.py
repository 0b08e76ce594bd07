"""``modelyard rollout start|status|promote|abort|history``: canary, shadow and A/B rollouts.

The rollout lives in the registry; every server following the champion's alias picks it up
and drives it (advances steps, promotes, rolls back) from its own live metrics. These
commands start and stop rollouts by hand and show how the two versions compare, from the
inference log every server process writes.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import typer

from modelyard.cli.context import State, client_of
from modelyard.cli.render import console, print_json, print_table

__all__ = ["app"]

app = typer.Typer(help="Roll a challenger out against the champion: canary, shadow or A/B.",
                  no_args_is_help=True)


@app.command("start")
def start(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    challenger: int = typer.Option(..., "--challenger", min=1, help="Version to roll out."),
    mode: str = typer.Option("canary", "--mode", help="canary, shadow or ab."),
    weight: float | None = typer.Option(
        None, "--weight", help="First share of traffic for the challenger (canary, ab)."),
    steps: str | None = typer.Option(
        None, "--steps", help="Traffic shares per step, e.g. 10%,50%,100% (default 0.1,0.5,1)."),
    alias: str = typer.Option("production", "--alias", help="The champion's alias."),
    min_requests: int = typer.Option(200, "--min-requests", min=1,
                                     help="Challenger requests per step before it advances."),
    min_minutes: float = typer.Option(0.0, "--min-minutes", min=0,
                                      help="Minutes each step lasts at least."),
    error_tolerance: float = typer.Option(
        0.01, "--error-tolerance", min=0,
        help="Roll back when the challenger's error rate exceeds the champion's by more."),
    latency_ratio: float = typer.Option(
        2.0, "--latency-ratio", min=1,
        help="Roll back when the challenger's p99 exceeds the champion's times this "
             "(+ --latency-slack-ms)."),
    latency_slack_ms: float = typer.Option(10.0, "--latency-slack-ms", min=0),
    accuracy_drop: float = typer.Option(
        0.02, "--accuracy-drop", min=0,
        help="With labels: roll back when the challenger's accuracy is lower by more."),
    min_agreement: float | None = typer.Option(
        None, "--min-agreement", min=0, max=1,
        help="Shadow: roll back when fewer answers agree with the champion's."),
    sticky: str | None = typer.Option(
        None, "--sticky", help="ab: header:X-User-ID or column:customer_id keeps a user on "
                               "one side."),
    manual_promote: bool = typer.Option(
        False, "--manual-promote", help="Hold after the last step until 'rollout promote'."),
    reason: str = typer.Option("", "--reason", help="Why, recorded in the alias history."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Start a rollout; servers following the champion's alias drive it from there.

    Example: modelyard rollout start fraud --challenger 5 --mode canary --weight 0.1
    """
    from modelyard.core.rollout import RolloutPolicy, parse_steps

    policy = RolloutPolicy(
        steps=parse_steps(steps) if steps else RolloutPolicy().steps,
        min_requests=min_requests, min_duration_s=min_minutes * 60.0,
        max_error_rate_delta=error_tolerance, max_latency_ratio=latency_ratio,
        latency_slack_ms=latency_slack_ms, max_accuracy_drop=accuracy_drop,
        min_agreement=min_agreement, auto_promote=not manual_promote, sticky=sticky)
    rollout = client_of(ctx).start_rollout(
        name, challenger, mode=mode, weight=weight,
        steps=policy.steps if steps else None, alias=alias, policy=policy, reason=reason)
    if json:
        print_json(rollout.to_dict())
        return
    share = ("a copy of every request" if rollout.mode == "shadow"
             else f"{rollout.weight:.0%} of the traffic")
    console.print(f"Rollout #{rollout.id} of {name}: version {rollout.challenger} gets {share} "
                  f"against {alias} version {rollout.champion}.")
    console.print("Servers following "
                  f"models:/{name}@{alias} pick it up within their alias poll interval.")


@app.command("status")
def status(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The active (or last) rollout and how the two versions compare in the inference log.

    Example: modelyard rollout status fraud
    """
    client = client_of(ctx)
    history = client.rollout_history(name, limit=1)
    if not history:
        client.get_model(name)
        console.print(f"Model {name} has had no rollout. Start one: modelyard rollout start "
                      f"{name} --challenger VERSION")
        return
    rollout = history[0]
    stats = _logged_stats(ctx, name, rollout.champion, rollout.challenger, rollout.started_at,
                          None if rollout.active else rollout.updated_at)
    if json:
        print_json({"rollout": rollout.to_dict(),
                    "versions": {str(v): s.to_dict() for v, s in stats.items()}})
        return
    steps = rollout.policy.n_steps(rollout.mode)
    console.print(
        f"Rollout #{rollout.id} of {name} ({rollout.mode}): {rollout.state}; version "
        f"{rollout.challenger} against {rollout.alias} version {rollout.champion}; step "
        f"{rollout.step + 1} of {steps}"
        + ("" if rollout.mode == "shadow" else f" at {rollout.weight:.0%}")
        + f"; started {_ago(rollout.started_at)}.")
    if rollout.reason:
        console.print(f"Last decision: {rollout.reason}")
    rows = []
    for version, role in ((rollout.champion, "champion"), (rollout.challenger, "challenger")):
        s = stats[version]
        rows.append((role, version, s.requests, f"{s.error_rate:.2%}",
                     _fmt(s.p99_ms, "{:.1f} ms"), _fmt(s.agreement, "{:.1%}"),
                     _fmt(s.accuracy, "{:.3f}"), s.labelled))
    print_table("From the inference log",
                ["role", "version", "requests", "errors", "p99", "agreement", "accuracy",
                 "labelled"], rows)


@app.command("promote")
def promote(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    reason: str = typer.Option("", "--reason", help="Why, recorded in the alias history."),
) -> None:
    """Promote the challenger now: the champion's alias moves to it.

    Example: modelyard rollout promote fraud --reason "business sign-off"
    """
    r = client_of(ctx).promote_rollout(name, reason=reason)
    console.print(f"Rollout #{r.id}: {name}@{r.alias} -> version {r.challenger} ({r.state}).")


@app.command("abort")
def abort(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    reason: str = typer.Option("", "--reason", help="Why, recorded in the alias history."),
) -> None:
    """Stop the rollout; the champion keeps serving all traffic.

    Example: modelyard rollout abort fraud --reason "wrong training data"
    """
    r = client_of(ctx).abort_rollout(name, reason=reason)
    console.print(f"Rollout #{r.id} aborted; {name}@{r.alias} stays at version {r.champion}.")


@app.command("history")
def history(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    limit: int = typer.Option(20, "--limit", min=1),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every rollout of a model, newest first, with how it ended and why.

    Example: modelyard rollout history fraud
    """
    rollouts = client_of(ctx).rollout_history(name, limit)
    if json:
        print_json([r.to_dict() for r in rollouts])
        return
    print_table(f"Rollouts of {name}",
                ["id", "started", "mode", "champion", "challenger", "step", "state", "reason"],
                [(r.id, _iso(r.started_at), r.mode, r.champion, r.challenger,
                  f"{r.step + 1}/{r.policy.n_steps(r.mode)}", r.state, r.reason)
                 for r in rollouts])


def _logged_stats(ctx: typer.Context, name: str, champion: int, challenger: int, since: float,
                  until: float | None) -> dict[int, Any]:
    from modelyard.cli.monitor import log_store
    from modelyard.monitoring.rollout_compare import compare_versions

    state: State = ctx.obj
    store = log_store(ctx)
    if not state.settings.monitoring.log_enabled:
        console.print("[dim]The inference log is off (monitoring.log_enabled): no comparison."
                      "[/]")
    inferences = store.read_inferences(name, since=since, until=until)
    feedback = store.read_feedback(name, since=since)
    return compare_versions(inferences, feedback, (champion, challenger))


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _ago(ts: float) -> str:
    seconds = max(0.0, time.time() - ts)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
