"""`catwatcher-inference serve`, `make-models --out DIR` and `quantize MODEL --calibration DIR --out FILE`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from inference.settings import Settings, SettingsError, load_settings

PROGRAM = "catwatcher-inference"


def settings_help() -> str:
    """Every setting as `VARIABLE  default` (choices for enumerations), for `serve --help`."""
    from typing import get_args, get_origin

    from inference.settings import Settings, env_name

    lines = ["settings (environment variables; an empty value means unset):"]
    for section, section_info in Settings.model_fields.items():
        for name, info in section_info.annotation.model_fields.items():  # type: ignore[union-attr]
            default = info.get_default(call_default_factory=True)
            shown = (
                "unset"
                if default in (None, ())
                else str(default).lower()
                if isinstance(default, bool)
                else str(default)
            )
            choices = get_args(info.annotation) if get_origin(info.annotation) is Literal else ()
            suffix = f" (one of {', '.join(choices)})" if choices else ""
            lines.append(f"  {env_name((section, name)):<50} default {shown}{suffix}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Cat Watcher inference service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve",
        help="serve the HTTP API, configured from CAT_WATCHER__* variables",
        description="Serve the HTTP API (/healthz, /readyz, /metrics, POST "
        "/v1/detect), configured from environment variables.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    make = commands.add_parser(
        "make-models", help="write placeholder detector.onnx, identifier.onnx and cat_names.json"
    )
    make.add_argument("--out", type=Path, required=True, help="directory to write the models into")
    make.add_argument("--cat-names", default=None, help="comma-separated cat names (identifier classes)")
    make.add_argument("--seed", type=int, default=0, help="seed for the fixed random weights")
    quantize = commands.add_parser(
        "quantize", help="int8 copy of an fp32 detector or identifier for the CPU path (static, calibrated)"
    )
    quantize.add_argument("model", type=Path, help="fp32 ONNX model (detector or identifier)")
    quantize.add_argument(
        "--calibration", type=Path, required=True, help="directory of typical camera frames (.jpg, .png, .webp)"
    )
    quantize.add_argument("--out", type=Path, required=True, help="int8 model file to write")
    quantize.add_argument("--max-frames", type=int, default=64, help="calibration frames to use (sorted by name)")
    quantize.add_argument(
        "--reduce-range",
        action="store_true",
        help="7-bit weights, for x86 CPUs without VNNI (avoids int8 saturation there)",
    )
    return parser


def report_memory_budget(settings: Settings) -> None:
    """Logs the worst case; warns when it does not fit 3/4 of this container's memory limit."""
    from inference.memory_budget import MAX_SHARE_OF_POD_LIMIT, MiB, cgroup_memory_limit, worst_case

    budget, limit = worst_case(settings), cgroup_memory_limit()
    log = logging.getLogger("inference.memory")
    if limit is not None and budget.total > limit * MAX_SHARE_OF_POD_LIMIT:
        log.warning(
            "memory: %s exceeds %d%% of the container limit of %d MiB; lower "
            "CAT_WATCHER__SERVER__MAX_PENDING_REQUESTS, CAT_WATCHER__INFERENCE__MAX_REQUEST_BYTES "
            "or CAT_WATCHER__INFERENCE__MAX_DECODED_IMAGE_BYTES",
            budget.describe(),
            MAX_SHARE_OF_POD_LIMIT * 100,
            limit // MiB,
        )
    else:
        log.info("memory: %s; container limit %s", budget.describe(), f"{limit // MiB} MiB" if limit else "none")


def serve() -> int:
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    import uvicorn

    from inference.app import create_app
    from inference.server import UVICORN_PER_REQUEST_WARNINGS, IntervalFilter, head_deadline_protocol

    server: uvicorn.Server | None = None

    def stop_serving(error: BaseException) -> None:
        # Never ready without models: stop, so the pod restarts and the failure is visible.
        assert server is not None
        server.should_exit = True

    app = create_app(settings, on_fatal=stop_serving)
    state = app.state.service

    def head_timed_out() -> None:
        state.refuse(
            "header_timeout",
            "closed a connection that sent no complete request head within "
            f"{settings.server.header_timeout:g} s (CAT_WATCHER__SERVER__HEADER_TIMEOUT)",
        )

    # No limit_concurrency: it counted idle connections and answered even the probes with a
    # plain-text 503. Idle connections are closed by the head deadline; admission is per request
    # (inference.app.RequestGuard).
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.server.log_level,
        access_log=settings.server.access_log,
        server_header=False,
        lifespan="on",
        http=head_deadline_protocol(settings.server.header_timeout, head_timed_out),
        h11_max_incomplete_event_size=settings.server.max_header_bytes,
    )
    report_memory_budget(settings)
    logging.getLogger("uvicorn.error").addFilter(
        IntervalFilter(UVICORN_PER_REQUEST_WARNINGS, settings.server.log_interval)
    )
    server = uvicorn.Server(config)
    server.run()
    return 1 if app.state.service.load_error else 0


def make_models(out: Path, cat_names: str | None, seed: int) -> int:
    from inference.modelgen import PLACEHOLDER_CAT_NAMES, write_models

    names = tuple(name.strip() for name in cat_names.split(",") if name.strip()) if cat_names else PLACEHOLDER_CAT_NAMES
    for path in write_models(out, names, seed).values():
        print(path)
    return 0


def quantize(model: Path, calibration: Path, out: Path, max_frames: int, reduce_range: bool = False) -> int:
    from inference.quantize import QuantizeError, quantize_model

    try:
        report = quantize_model(model, calibration, out, max_frames, reduce_range)
    except QuantizeError as error:
        print(f"{PROGRAM} quantize: {error}", file=sys.stderr)
        return 2
    for skipped in report.skipped:
        print(f"{PROGRAM} quantize: skipped {skipped}", file=sys.stderr)
    print(
        f"{report.output}: int8 {report.kind}, calibrated on {report.frames} "
        f"frames, {report.float_nodes} post-processing nodes kept in float"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    if arguments.command == "serve":
        return serve()
    if arguments.command == "quantize":
        return quantize(
            arguments.model, arguments.calibration, arguments.out, arguments.max_frames, arguments.reduce_range
        )
    return make_models(arguments.out, arguments.cat_names, arguments.seed)


if __name__ == "__main__":
    sys.exit(main())
