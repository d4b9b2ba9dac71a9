"""Every word the web page shows, in one place, as gettext message ids (domain `station-agent`).

The page speaks the station's language through the agent's own catalogues (agent/locale, the same ones
`station-agent status` uses) and English where there is none: adding a language is adding a catalogue, not
touching the page. `N_` marks a message for extraction (xgettext -kN_) without translating it here.
"""

from __future__ import annotations

from agent.locale import LANGUAGES, translations


def N_(message: str) -> str:
    return message


def N_n(singular: str, plural: str) -> tuple[str, str]:
    """Marks a message with a plural (xgettext -kN_n:1,2): said with `Words.plural`."""
    return singular, plural


HEALTH = {
    "ok": N_("ALL WELL"),
    "starting": N_("STARTING"),
    "degraded": N_("OFFLINE, BUFFERING"),
    "fault": N_("NEEDS SOMEONE"),
    "stopped": N_("STOPPED"),
}
HEALTH_LINE = {
    "ok": N_("Sales are recorded and reach the platform."),
    "starting": N_("Sales are recorded; the platform has not confirmed them yet."),
    "degraded": N_("Sales are recorded and kept on the box until the platform can be reached."),
    "fault": N_("Something needs a person: see the alarms below."),
    "stopped": N_("The agent has stopped; nothing is being recorded."),
}
LINK_STATES = {
    "online": N_("online"),
    "connecting": N_("connecting"),
    "offline": N_("offline"),
    "stopped": N_("stopped"),
    "unknown": N_("no answer yet"),
}
NOZZLE_STATES = {
    "idle": N_("idle"),
    "lifted": N_("nozzle lifted"),
    "fuelling": N_("fuelling"),
    "finished": N_("finished"),
    "answering": N_("ready"),
    "not_answering": N_("controller not answering"),
    "unknown": N_("no word yet"),
}

TITLE = N_("Station console")
NOZZLES = N_("Nozzles")
TANKS = N_("Tanks")
ALARMS = N_("Alarms and what to do")
NO_ALARMS = N_("No alarm.")
UPLINKS = N_("Uplinks")
LINES = N_("Field lines")
LAST_SALE = N_("last sale")
NO_SALE = N_("no sale since the agent started")
GRADE = N_("grade")
TANK = N_("tank")
CAPACITY = N_("capacity")
LEVEL_UNKNOWN = N_("level not in the agent's status")
LEVEL_NOT_YET = N_("no gauge reading yet")
WATER = N_("water")
PLATFORM_MQTT = N_("City platform (MQTT)")
ECOLOGY_HJ212 = N_("Ecology platform (HJ 212)")
NOT_CONFIGURED = N_("not configured")
STATE_SINCE = N_("{state} since {time}")
SINCE_TIME = N_("since {time}")
PRODUCTS = {"gasoline": N_("gasoline"), "diesel": N_("diesel")}
RECORDS_WAITING = N_n("{count} record waiting on the box", "{count} records waiting on the box")
TECHNICAL = N_("technical detail")
UPDATED = N_("updated")
AGENT_NOT_RUNNING = N_("The station agent is not running: no sales are being recorded. Call the installer or support.")
AGENT_STARTING = N_("The station agent is starting; this page fills in a few seconds.")
AGENT_UNREADABLE = N_("The agent's answer could not be read; call support.")
CONSOLE = N_("Console")
SHEET = N_("Commissioning sheet")
SELFTEST = N_("Self-test")
LOG_OUT = N_("Log out")
LOG_IN = N_("Log in")
PIN = N_("PIN")
WRONG_PIN = N_("Wrong PIN.")
TRY_LATER = N_("Too many wrong tries: wait {seconds} s and try again.")
RUN_SELFTEST = N_("Run the self-test")
SELFTEST_HINT = N_("Checks the box as the installer's `station-agent selftest` does; it changes nothing.")
SELFTEST_PASSED = N_("Self-test passed.")
SELFTEST_FAILED = N_("Self-test found problems (exit code {code}).")
SELFTEST_TIMEOUT = N_("Self-test did not finish within {seconds} s.")
SELFTEST_BUSY = N_("A self-test is already running; try again in a minute.")
SHEET_NO_KEY = N_(
    "The device key is not readable by the web page (by design); the station's configuration follows. "
    "Print the full sheet at the box with station-agent provision."
)
SHEET_TLS = N_("This station uses TLS; print the full sheet, with its TLS files, at the box.")
NOT_FOUND = N_("Not found.")
READ_ONLY = N_("Read-only: this page changes nothing on the station.")
WRONG_HOST = N_("This page answers for {listen} only.")
LOG_IN_FIRST = N_("Log in first.")
CROSS_ORIGIN = N_("A form from another site is refused.")
GET_OR_POST = N_("Only GET or POST.")
LOGIN_FORM = N_("The login form has one field: the PIN.")
HEAD_TOO_LARGE = N_("The request's head is too large.")
BODY_TOO_LARGE = N_("The request's body is too large.")
LENGTH_REQUIRED = N_("A form sent here needs a Content-Length.")
BODY_LATE = N_("The request's body did not arrive in time.")
NOT_UNDERSTOOD = N_("This page did not understand the browser's request.")


class Words:
    """The messages above in one language: `words(message, **values)`."""

    def __init__(self, locale: str) -> None:
        self.locale = locale
        self._translation = translations(locale)

    def __call__(self, message: str, **values: object) -> str:
        text = self._translation.gettext(message)
        return text.format(**values) if values else text

    def plural(self, message: tuple[str, str], count: int, **values: object) -> str:
        """A message with a plural (N_n), the form for `count` in this language; `count` is a value too."""
        return self._translation.ngettext(*message, count).format(count=count, **values)


def spoken(said: object, fallback: Words) -> Words:
    """The words in the language a snapshot names (`locale`), or `fallback`'s when it names none this box has
    a catalogue for (a newer agent's language, a damaged snapshot's text): an unknown name never breaks a page."""
    if isinstance(said, str) and said in LANGUAGES and said != fallback.locale:
        return Words(said)
    return fallback
