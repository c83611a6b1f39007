"""Print the requirements in pyproject.toml, one a line, for a pip install in its own layer;
with the serving dependencies, also the image's pins (`[tool.model-deployment-app]`).

    python docker/requirements.py              # the serving dependencies only
    python docker/requirements.py deploy dev   # plus those extras
    python docker/requirements.py --only xgboost,onnx   # those extras alone (the image's FAMILIES)

Run on pyproject.toml alone (before the source is copied), so the dependency layer stays
cached until the dependencies change.
"""

import sys
import tomllib

with open("pyproject.toml", "rb") as file:
    pyproject = tomllib.load(file)
project = pyproject["project"]
pins = pyproject["tool"]["model-deployment-app"]["serving-pins"]

arguments = sys.argv[1:]
only = arguments[:1] == ["--only"]
extras = " ".join(arguments[1:] if only else arguments).replace(",", " ").split()
known = project["optional-dependencies"]
unknown = [extra for extra in extras if extra not in known]
if unknown:
    sys.exit(f"error: unknown extra(s) {', '.join(unknown)}: one of {', '.join(known)}")
requirements = [] if only else [*project["dependencies"], *pins]
for extra in extras:
    requirements += known[extra]
print("\n".join(requirements))
