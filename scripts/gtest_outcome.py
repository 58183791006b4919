#!/usr/bin/env python3
"""One line judging a test run for scripts/gpu-check.sh: "STATE detail".

Usage: gtest_outcome.py REPORT.xml EXIT_STATUS

REPORT.xml: GoogleTest's --gtest_output=xml report, or pytest's --junitxml (same shape).

STATE is pass (every test ran and passed), SKIPPED (a test skipped or was disabled: a
failure on the GPU machine), NO-DEVICE (every failure is the FUSCO_REQUIRE_GPU "no CUDA device" failure of
tests/gpu/gpu_presence.hpp) or FAIL (any other failure, or no report: the run crashed).
"""
import sys
import xml.etree.ElementTree as ElementTree

NO_DEVICE = "FUSCO_REQUIRE_GPU=1 but there is no CUDA device"


def names(cases, limit=6):
    shown = ", ".join(cases[:limit])
    return shown + (f" and {len(cases) - limit} more" if len(cases) > limit else "")


def judge(path, status):
    try:
        tests = ElementTree.parse(path).getroot().iter("testcase")
    except (OSError, ElementTree.ParseError) as error:
        return f"FAIL exit {status}, no test report ({error.__class__.__name__}): crashed or hung? see the log"
    failed, skipped, no_device, total = [], [], [], 0
    reasons = []
    for case in tests:
        total += 1
        name = f"{case.get('classname')}.{case.get('name')}"
        failures = [f.get("message", "") for f in case if f.tag in ("failure", "error")]
        if failures:
            if all(NO_DEVICE in message for message in failures):
                no_device.append(name)
                reasons.append(failures[0])
            else:
                failed.append(name)
        elif (case.get("result") == "skipped" or case.find("skipped") is not None
              or case.get("status") == "notrun"):
            skipped.append(name)
    if failed:
        return f"FAIL {len(failed)} of {total} failed: {names(failed)}"
    if no_device:
        reason = reasons[0].split(NO_DEVICE, 1)[1].lstrip(": ").splitlines()[0]
        return (f"NO-DEVICE {len(no_device)} of {total} tests need a GPU ({reason}); "
                f"{total - len(no_device) - len(skipped)} passed")
    if skipped:
        return f"SKIPPED {len(skipped)} of {total} skipped (a failure here): {names(skipped)}"
    if status != 0 or total == 0:
        return f"FAIL exit {status} with {total} tests in the report"
    return f"pass {total} tests"


if __name__ == "__main__":
    print(judge(sys.argv[1], int(sys.argv[2])))
