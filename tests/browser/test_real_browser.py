"""Segment's and RudderStack's own browser libraries, in headless Chromium, send to segmint.

Each page loads the library's standalone build from its own site (copied from the npm
package), takes its settings from ``segmint serve`` and calls ``page()``, ``identify()`` and
``track('Product Viewed')`` as a shop would; the profile then holds the page view, the
traits and the event, and the segment on ``performed('Product Viewed')`` holds the visitor.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import PageServer, Segmint, console

pytestmark = pytest.mark.slow

# Segment's snippet (5.2.x) as the README gives it: the script comes from the site, the
# settings from segmint (``analytics._cdn``).
SEGMENT_PAGE = """<!doctype html>
<html><head><title>Shop</title>
<script>
  !function(){var i="analytics",analytics=window[i]=window[i]||[];if(!analytics.initialize)
  if(analytics.invoked)window.console&&console.error&&
  console.error("Segment snippet included twice.");
  else{analytics.invoked=!0;analytics.methods=["trackSubmit","trackClick","trackLink","trackForm",
  "pageview","identify","reset","group","track","ready","alias","debug","page","screen","once","off",
  "on","addSourceMiddleware","addIntegrationMiddleware","setAnonymousId","addDestinationMiddleware",
  "register"];analytics.factory=function(e){return function(){if(window[i].initialized)
  return window[i][e].apply(window[i],arguments);var n=Array.prototype.slice.call(arguments);
  if(["track","screen","alias","group","page","identify"].indexOf(e)>-1){
  var c=document.querySelector("link[rel='canonical']");n.push({__t:"bpc",
  c:c&&c.getAttribute("href")||void 0,p:location.pathname,u:location.href,s:location.search,
  t:document.title,r:document.referrer})}n.unshift(e);analytics.push(n);return analytics}};
  for(var n=0;n<analytics.methods.length;n++){var key=analytics.methods[n];
  analytics[key]=analytics.factory(key)}analytics.load=function(key,n){
  var t=document.createElement("script");t.type="text/javascript";t.async=!0;
  t.setAttribute("data-global-segment-analytics-key",i);t.src="/js/analytics-next.js";
  var r=document.getElementsByTagName("script")[0];r.parentNode.insertBefore(t,r);
  analytics._loadOptions=n};analytics._writeKey="%(key)s";analytics._cdn="%(segmint)s";
  analytics.SNIPPET_VERSION="5.2.1";
  analytics.load("%(key)s");
  analytics.page("Home");
  analytics.identify("%(user)s", {email: "%(email)s", first_name: "Ada"});
  analytics.track("Product Viewed", {sku: "sku-1", category: "shoes"});
  }}();
</script>
</head><body><h1>Shop</h1></body></html>
"""

RUDDERSTACK_PAGE = """<!doctype html>
<html><head><title>Shop</title>
<script src="/js/rudderstack.js"></script>
<script>
  var rudder = new rudderanalytics.RudderAnalytics();
  rudder.load("%(key)s", "%(segmint)s", {
    configUrl: "%(segmint)s",
    destSDKBaseURL: "%(segmint)s/no-destinations",
    pluginsSDKBaseURL: "%(segmint)s/no-plugins",
    polyfillIfRequired: false,
    loadIntegration: false
  });
  rudder.page("Shop", "Home");
  rudder.identify("%(user)s", {email: "%(email)s", first_name: "Ada"});
  rudder.track("Product Viewed", {sku: "sku-1", category: "shoes"});
</script>
</head><body><h1>Shop</h1></body></html>
"""


def visit(
    driver: Any, segmint: Segmint, site: PageServer, template: str, user: str, settings: str
) -> None:
    """Open the shop page as ``user``; wait for the segment; check nothing came from elsewhere."""
    values = {"key": segmint.key, "segmint": segmint.url, "user": user,
              "email": f"{user}@example.com"}  # fmt: skip
    driver.get(site.page(f"{user}.html", template % values))
    try:
        segmint.wait_for_segment(user, "product_viewers")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nbrowser console:\n{console(driver)}") from None
    fetched = driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    assert all(url.startswith("http://127.0.0.1:") for url in fetched), fetched
    assert any(url.startswith(segmint.url + settings) for url in fetched), fetched


def events_of(segmint: Segmint, **identity: str) -> list[dict[str, Any]]:
    """The stored events of the profile with ``user_id=…`` or ``anonymous_id=…``."""
    from segmint.workspace import Workspace

    ((kind, value),) = identity.items()
    with Workspace.open(segmint.folder) as ws:
        rows = ws.store.fetchall(
            "SELECT type, event, context FROM events WHERE profile_id IN "
            "(SELECT profile_id FROM identities WHERE kind = ? AND value = ?) ORDER BY seq",
            [kind, value],
        )
    return [{"type": t, "event": e, "context": json.loads(c or "{}")} for t, e, c in rows]


def check_profile(segmint: Segmint, user: str, library: str) -> None:
    segmint.stop()  # the embedded store has one writer: read it once the server is done
    profile = json.loads(segmint.cli("profile", "show", user, "--format", "json"))
    traits = {t["name"]: t["value"] for t in profile["traits"]}
    assert traits["first_name"] == "Ada"
    assert traits["email"] == f"{user}@example.com"
    assert traits["favorite_category"] == "shoes"
    assert "product_viewers" in [s["segment"] for s in profile["segments"] if s["member"]]
    events = events_of(segmint, user_id=user)
    kinds = sorted((e["type"], e["event"] or "") for e in events)
    assert kinds == [("identify", ""), ("page", "Home"), ("track", "Product Viewed")]
    assert {e["context"]["library"]["name"] for e in events} == {library}


def test_segment_analytics_next_delivers_page_identify_and_track(
    driver: Any, segmint: Segmint, site: PageServer
) -> None:
    visit(driver, segmint, site, SEGMENT_PAGE, "ada-segment", f"/v1/projects/{segmint.key}")
    check_profile(segmint, "ada-segment", "analytics.js")


def test_rudderstack_sdk_delivers_page_identify_and_track(
    driver: Any, segmint: Segmint, site: PageServer
) -> None:
    visit(driver, segmint, site, RUDDERSTACK_PAGE, "ada-rudder", "/sourceConfig")
    check_profile(segmint, "ada-rudder", "RudderLabs JavaScript SDK")


FETCH = """
const done = arguments[arguments.length - 1];
fetch(arguments[0], arguments[1]).then(
  (r) => done("answered " + r.status), (e) => done("refused: " + e));
"""


def test_cors_refuses_a_page_from_an_unlisted_origin(
    driver: Any, segmint: Segmint, site: PageServer, other_site: PageServer
) -> None:
    page = other_site.page("evil.html", "<!doctype html><title>Other</title><p>other</p>")
    driver.get(page)
    body = json.dumps(
        {"writeKey": segmint.key, "anonymousId": "intruder", "event": "Product Viewed"}
    )
    simple = {"method": "POST", "headers": {"Content-Type": "text/plain"}, "body": body}
    with_auth = simple | {"headers": {"Content-Type": "text/plain",
                                      "Authorization": "Basic " + segmint.key}}  # fmt: skip
    settings = f"{segmint.url}/v1/projects/{segmint.key}/settings"
    results = [
        driver.execute_async_script(FETCH, f"{segmint.url}/v1/t", simple),
        driver.execute_async_script(FETCH, f"{segmint.url}/v1/t", with_auth),
        driver.execute_async_script(FETCH, settings, {}),
    ]
    assert all(r.startswith("refused: TypeError") for r in results), results
    assert "CORS policy" in console(driver)
    # The same requests from the listed site are answered.
    driver.get(site.page("ok.html", "<!doctype html><title>Shop</title><p>shop</p>"))
    ok = json.loads(body) | {"anonymousId": "visitor"}
    allowed = driver.execute_async_script(
        FETCH, f"{segmint.url}/v1/t", simple | {"body": json.dumps(ok)}
    )
    assert allowed == "answered 200"
    segmint.stop()
    assert len(events_of(segmint, anonymous_id="visitor")) == 1
    assert events_of(segmint, anonymous_id="intruder") == []
