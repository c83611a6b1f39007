"""Print the requirements in pyproject.toml, one a line, for a pip install in its own layer.

    python docker/requirements.py              # the serving dependencies only
    python docker/requirements.py deploy dev   # plus those extras

Run on pyproject.toml alone (before the source is copied), so the dependency layer stays
cached until the dependencies change.
"""

import sys
import tomllib

with open("pyproject.toml", "rb") as file:
    project = tomllib.load(file)["project"]

requirements = list(project["dependencies"])
for extra in sys.argv[1:]:
    requirements += project["optional-dependencies"][extra]
print("\n".join(requirements))
