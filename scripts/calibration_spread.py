"""Does fitting one threshold per keyword overfit the calibration speakers? The fit of `kws calibrate` with every
keyword's threshold held within --spreads grid steps (10 score points each) of a shared one (0: one threshold for
all; -1: free, what `kws calibrate` does), each fitted on one half's streams and scored on the other half's, both
ways round. Changes nothing: prints the table.

    python scripts/calibration_spread.py --model models/speech_commands_12 \
        --data ../shared/data/speech_commands_v0.02_test_dev --noise ../shared/data/speech_commands_background_noise/{doing_the_dishes,exercise_bike,pink_noise,running_tap,white_noise}.wav \
        --other-words ../shared/data/speech_commands_v0.01_other_words --stream-minutes 240
"""

from __future__ import annotations

import argparse

from kws.common.paths import DEFAULT_MODEL
from kws.evaluation import calibrate, calibrate_run, streaming
from kws.evaluation.evaluate import ModelDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="model folder")
    parser.add_argument("--data", nargs="+", required=True, help="labelled clips (as kws calibrate)")
    parser.add_argument("--split", default="validation", help="which of their clips (as kws calibrate)")
    parser.add_argument("--noise", nargs="*", default=[], help="background noise files (as kws calibrate)")
    parser.add_argument("--other-words", nargs="*", default=[], help="non-keyword word folders (as kws calibrate)")
    parser.add_argument("--stream-minutes", type=float, default=60.0, help="length of each stream")
    parser.add_argument("--stream-snr", type=float, default=10.0, help="background level, dB below the clips")
    parser.add_argument("--targets", type=float, nargs="+", default=[1.0, 5.0], help="FA/h targets to fit")
    parser.add_argument("--spreads", type=int, nargs="+", default=[-1, 0, 1, 2, 4],
                        help="grid steps each keyword may leave the shared threshold (-1: free)")
    parser.add_argument("--backend", default="litert", choices=["litert", "tflm"], help="int8 runtime")
    args = parser.parse_args()
    model = ModelDir(args.model)
    built = calibrate_run.build_streams(model, args.data, args.noise, args.stream_minutes, args.stream_snr,
                                        args.backend, args.split, other_word_folders=args.other_words)
    print(f"halves by {built.how}: {len(built.calibration.speakers)} / {len(built.heldout.speakers)} speakers; "
          f"{args.stream_minutes:g} min per stream; FA/h interval: Poisson widened by a bootstrap over clips")
    print(f"{'fit on':<12} {'spread':>6} {'target':>6} | {'fitted FA/h':>11} {'FRR':>6} | {'other half FA/h':>24} "
          f"{'FRR':>6} {'delay':>7} {'FA clips':>9}")
    for fit_on, score_on in (("calibration", "heldout"), ("heldout", "calibration")):
        for spread in args.spreads:
            best, _, _ = calibrate.fit(*built.sets[fit_on], model.config, tuple(args.targets),
                                       None if spread < 0 else spread)
            for target, fitted in best.items():
                keyword, non_keyword = streaming.operating_point(*built.sets[score_on], model.config, fitted.setting)
                other = streaming.operating_summary(keyword, non_keyword, model.config.labels)
                low, high = other["fa_per_hour_ci95"]
                delay = other["delay_ms"]["median"]
                print(f"{fit_on:<12} {'free' if spread < 0 else spread:>6} {target:>6g} | "
                      f"{fitted.non_keyword.fa_per_hour:>11.2f} {fitted.keyword.frr:>6.3f} | "
                      f"{other['fa_per_hour']:>7.2f} ({low:>6.2f}-{high:>6.2f}) {other['frr']:>6.3f} "
                      f"{'n/a' if delay is None else f'{delay:.0f} ms':>7} "
                      f"{other['false_accept_clips']:>4}/{other['distinct_clips']}")


if __name__ == "__main__":
    main()
