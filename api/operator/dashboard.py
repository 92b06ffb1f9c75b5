"""The console's dashboard (/operatore/cruscotto): HTTP glue over
sibyl.backoffice.reports, presentation in api/operator/present.py."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request

from api.operator import present
from api.operator.deps import PREFIX, ConsoleDep, OperatorDep, client_ip, language, render
from api.operator.present import t
from sibyl.backoffice import reports

router = APIRouter(prefix=PREFIX, tags=["operator"], include_in_schema=False)


def _range(request: Request, dal: str, al: str):
    try:
        return reports.parse_range(dal or None, al or None)
    except reports.BadRange as exc:
        return t(language(request), "bad_range", reason=present.reason(language(request), exc))


@router.get("/cruscotto")
def dashboard_page(request: Request, console: ConsoleDep, operator: OperatorDep, dal: str = "", al: str = "",
                   area: str = ""):
    lang = language(request)
    got = _range(request, dal, al)
    if isinstance(got, str):
        return render(request, "dashboard.html", {"error": got, "board": None, "dal": dal, "al": al}, 422)
    start, end = got
    board = reports.dashboard(console.services.store, console.classifier(), start, end,
                              console.operators.handled_ids())
    drill, drilling = None, bool(area)
    if area:
        key = None if area == "none" else int(area) if re.fullmatch(r"[0-9]{1,6}", area) else -1
        if key not in board.per_area:
            return render(request, "dashboard.html", {"error": t(lang, "dash_bad_area"), "board": None,
                                                      "dal": dal, "al": al}, 404)
        drill = key
    console.operators.audit(operator.username, "view", {"page": "dashboard", "start": start, "end": end},
                            client_ip(request))
    names = {a: (console.classifier().names.get(a, str(a)) if a is not None else t(lang, "topics_unclassified"))
             for a in board.per_area}
    return render(request, "dashboard.html", {"error": None, "board": board, "names": names, "drill": drill,
                                              "drilling": drilling,
                                              "dal": start.isoformat(), "al": end.isoformat(),
                                              "age_labels": present.age_labels(lang)})
