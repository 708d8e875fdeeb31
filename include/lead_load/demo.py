"""`make demo`: run the project's main DAG once on the embedded default and say what happened."""

from __future__ import annotations

import subprocess
import sys


def main() -> int:
    print("Running the smoke DAG with `airflow dags test project_smoke` ...", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "project_smoke"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
        print("The smoke DAG failed; see the output above.")
        return result.returncode
    print("The smoke DAG ran to the end: Airflow, dags/ and include/ work together.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
