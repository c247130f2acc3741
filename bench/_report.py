# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How every benchmark reports: JSON on stdout, a copy in the results folder, exit 1 if a target is missed."""

from __future__ import annotations

import json
import os


def emit(report: dict, results_dir: str | None, filename: str, targets_met: bool) -> int:
    report["targets_met"] = targets_met
    print(json.dumps(report, indent=2))
    if results_dir:
        os.makedirs(results_dir, exist_ok=True)
        with open(os.path.join(results_dir, filename), "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return 0 if targets_met else 1
