# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Offline stand-in for get-pip.py (https://ci-files.testing.ansible.com/ansible-test/get-pip-24.2.py).

ansible-test runs ~/.ansible/test/cache/get_pip_24_2.py via runpy, inside a venv created
without pip, with args like `--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel`.
Instead of embedding pip, this script puts the wheel pip-24.2-py3-none-any.whl from its own
directory on sys.path (fetch it with `pip download pip==24.2 --no-deps -d DIR`; the version
comes from this file's name, GET_PIP_WHEEL=/path/to/wheel overrides) and runs
`pip install --upgrade --force-reinstall ARGS pip` like get-pip.py, using only the wheels in
that directory (--no-index --find-links DIR), so no network access is needed.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    version = os.path.splitext(os.path.basename(__file__))[0].replace('get_pip_', '').replace('_', '.')  # get_pip_24_2 -> 24.2
    wheel = os.path.abspath(os.environ.get('GET_PIP_WHEEL') or os.path.join(here, 'pip-%s-py3-none-any.whl' % version))

    if not os.path.isfile(wheel):
        sys.exit('get_pip: %s not found; run: pip download pip==%s --no-deps -d %s' % (wheel, version, here))

    # As in get-pip.py, --no-setuptools/--no-wheel only suppress the implicit setuptools/wheel
    # installs (which this script never does), so they are dropped; all other args are passed on.
    args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]

    sys.path.insert(0, wheel)

    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    sys.exit(pip_main(['install', '--upgrade', '--force-reinstall', '--no-index',
                       '--find-links', os.path.dirname(wheel)] + args + ['pip']))


if __name__ == '__main__':
    main()
