"""ESEARCH (RFC 7377 MULTISEARCH): one SEARCH over several mailboxes, in the
authenticated or the selected state.

The source options resolve to mailboxes once, from one listing of the account; each is
searched with SEARCH's machinery as a view of its own (the selected one through the
session's view, so it sees what the session sees). A mailbox with a match gets one
``* ESEARCH (TAG "t" MAILBOX m UIDVALIDITY v) UID ...`` response, in UIDs; one without
gets none (2.1). Answers go out mailbox by mailbox, other sessions run in between (and
inside big mailboxes, as in SEARCH), the command says how far it is (INPROGRESS, counting
mailboxes), and one ESEARCH searches at most `[imap] max_search_mailboxes` of them: more
is NO [LIMIT] before any is searched (2.4).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..store.api import DELIMITER, Mailbox, MailboxNotFound, StoreError
from . import grammar as g
from . import wire
from .access import Place, canonical, is_shared_name, own, shared
from .grammar.esearch import ESearch, Source
from .search import _Search, esearch, highest_modseq, plan, returned_results
from .session import AUTHED, Done, IMAPSession, Spec
from .view import RecentSet, SelectedView


def uses_saved(key: g.SearchKey) -> bool:
    """Whether the search refers to the saved result, $ (RFC 5182)."""
    if isinstance(key, g.SearchSet):
        return key.sequence_set.last_result
    if isinstance(key, g.SearchNot):
        return uses_saved(key.key)
    if isinstance(key, g.SearchOr):
        return uses_saved(key.left) or uses_saved(key.right)
    if isinstance(key, g.SearchAnd):
        return any(uses_saved(k) for k in key.keys)
    return False


@dataclass(frozen=True, slots=True)
class _Target:
    """A mailbox to search: the selected one (*selected*), or one of *place*'s account."""

    place: Place
    mailbox: Mailbox
    selected: bool = False


async def mailboxes(s: IMAPSession, sources: tuple[Source, ...]) -> list[_Target]:
    """The mailboxes *sources* name, each once, in name order. Names that name no
    mailbox are passed over, as are mailboxes the user may not read (2.2: "r" to search
    one, and "l" too where it was not named by MAILBOXES): a search finds nothing there.
    PERSONAL and INBOXES are the user's own mailboxes (RFC 5465 6.2, 6.3); other
    accounts' shared ones are reached by name, subtree or subscription."""
    store = s.store
    assert store is not None
    # Each kind once, with all the names given for it: a command line may repeat a
    # filter thousands of times, or name thousands of mailboxes, and an account may have
    # 10,000; one pass over them with set lookups whatever the line says.
    kinds: set[str] = set()
    named: dict[str, set[str]] = {"MAILBOXES": set(), "SUBTREE": set(), "SUBTREE-ONE": set()}
    for source in sources:
        kinds.add(source.kind)
        if source.kind in named:
            named[source.kind].update(canonical(s.decode_name(raw)) for raw in source.mailboxes)
    chosen: dict[str, _Target] = {}
    view = s.view
    if "SELECTED" in kinds:
        assert view is not None
        chosen[view.shown] = _Target(Place(view.store, view.owner, view.mailbox.name, view.shown, view.rights,
                                           own=view.owner == s.user), view.mailbox, True)
    subscribed: set[str] = set()
    if "SUBSCRIBED" in kinds:
        subscribed = set(await store.subscriptions())
    entries = own(s, await store.list_mailboxes())
    names = set().union(*named.values(), subscribed)
    if any(is_shared_name(n) for n in names):
        entries += await shared(s)  # read only when a name may lead there
    for e in entries:
        assert e.place is not None and e.mailbox is not None
        name, rights = e.shown, e.place.rights
        mine = e.place.own
        if "r" not in rights:
            continue
        if not (
            (mine and "PERSONAL" in kinds)
            or (mine and "INBOXES" in kinds and name == "INBOX")  # mail is delivered to INBOX only
            or name in named["MAILBOXES"]  # no wildcards (RFC 5465 6.6); named: "r" is enough
            or ("l" in rights and (
                name in subscribed
                or _in_subtree(name, named["SUBTREE"], False)
                or _in_subtree(name, named["SUBTREE-ONE"], True)
            ))
        ):
            continue
        if view is not None and view.owner == e.place.owner and view.mailbox.id == e.mailbox.id:
            chosen.setdefault(name, _Target(e.place, e.mailbox, True))
        else:
            chosen.setdefault(name, _Target(e.place, e.mailbox))
    return [chosen[n] for n in sorted(chosen)]


def _in_subtree(name: str, tops: set[str], one_level: bool) -> bool:
    """SUBTREE: whether *name* is one of *tops* or under one; SUBTREE-ONE: one of them
    or a child of one (RFC 7377 2.2). The hierarchy is names, so it has no loops to
    defend against; a name has few levels, so this is a few set lookups."""
    if not tops:
        return False
    if name in tops:
        return True
    cut = name.rfind(DELIMITER)
    while cut > 0:
        if name[:cut] in tops:
            return True
        if one_level:
            return False
        cut = name.rfind(DELIMITER, 0, cut)
    return False


async def cmd_esearch(s: IMAPSession, cmd: ESearch) -> Done:
    store = s.store
    assert store is not None
    sources = cmd.sources or (Source("SELECTED"),)  # 2.2: no source options, "selected"
    only_selected = all(src.kind == "SELECTED" for src in sources)
    options = cmd.return_options
    save = options is not None and "SAVE" in options
    if s.view is None and any(src.kind == "SELECTED" for src in sources):
        # 2.2: "selected" (named, or meant without IN) needs the selected state.
        return Done("BAD", "No mailbox is selected to search")
    if save and not only_selected:
        return Done("BAD", "SAVE needs the selected mailbox as the only source (RFC 7377 2.2)")
    if not only_selected and uses_saved(cmd.key):
        return Done("BAD", "$ refers to the selected mailbox only")
    planned = plan(s, cmd.charset, cmd.key)
    if isinstance(planned, Done):
        if save and s.view is not None and planned.status == "NO":
            s.view.saved = []  # RFC 5182 2.1: a failed SEARCH (SAVE) empties $
        return planned
    fields, has_modseq, needles = planned
    targets = await mailboxes(s, sources)
    limit = s.settings.max_search_mailboxes
    if len(targets) > limit:
        return Done("NO", f"ESEARCH may search at most {limit} mailboxes at once ({len(targets)} named)", "LIMIT")
    opts = set(options or ())
    wanted = (opts - {"SAVE"}) or ({"ALL"} if not opts else set())
    s.progress.total = len(targets)
    for n, target in enumerate(targets):
        await s.progress.step(n)
        mbox = target.mailbox
        if target.selected:
            assert s.view is not None
            view = s.view
            gone = view.pending_expunge
            cands = [u for u in view.uids if u not in gone] if gone else list(view.uids)
        else:
            place = target.place
            try:
                mbox, uids, _ = await place.account().select_info(place.name)
            except MailboxNotFound:
                continue  # deleted or renamed since the listing
            view = SelectedView(mbox, uids, True, RecentSet(), place.account(), place.owner, place.shown, place.rights)
            cands = list(view.uids)
        search = _Search(s, view, view.store, fields, needles, counts=False)
        try:
            found = await search.match(cmd.key, cands)
        except StoreError:
            if save:
                view.saved = []
            raise
        chosen = returned_results(found, opts, None)
        if save:
            view.saved = list(chosen)
        if not found or not wanted:
            continue  # 2.1: no ESEARCH response for a mailbox without a match
        highest = await highest_modseq(search, chosen) if has_modseq else None
        correlators = b" MAILBOX " + s.encode_name(view.shown) + b" UIDVALIDITY %d" % mbox.uidvalidity
        s.send(esearch(cmd.tag, True, wanted, found, highest, wire.sequence_set, correlators))
        await s.flush()
    return Done(text="ESEARCH completed")


COMMANDS = {
    # Like UID SEARCH (RFC 7377 2): UIDs only, so expunges may be reported after it.
    "ESEARCH": Spec(cmd_esearch, AUTHED),
}
