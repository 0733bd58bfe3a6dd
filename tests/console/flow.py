"""The console in a real browser: headless Chromium through WebDriver.

Run by tests/e2e/tests/console.rs against an app it started and filled:
CONSOLE_BASE (the app), CONSOLE_TOKEN (tenant acme's token), SHOTS (where
screenshots go). Prints one JSON line: {"ok": bool, "checks": {name: bool},
"failures": [...]}.
"""
import json
import os
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["CONSOLE_BASE"].rstrip("/")
TOKEN = os.environ["CONSOLE_TOKEN"]
ADMIN = os.environ.get("CONSOLE_ADMIN_TOKEN", "")
SHOTS = os.environ["SHOTS"]
XSS = "<img src=x onerror=alert(1)>"

checks = {}
failures = []


def check(name, ok, detail=""):
    checks[name] = bool(ok)
    if not ok:
        failures.append(f"{name}: {detail}")


def shot(driver, name):
    os.makedirs(SHOTS, exist_ok=True)
    driver.save_screenshot(os.path.join(SHOTS, name + ".png"))


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1280,1400",
              "--user-data-dir=" + tempfile.mkdtemp(prefix="spinoff-chromium-")]:
        o.add_argument(a)
    return webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=o)


def no_alert(driver):
    try:
        driver.switch_to.alert
        return False
    except NoAlertPresentException:
        return True


def fresh(f, tries=20):
    """f(), again while the page redrew what it found (the tree and the
    operations are redrawn as they change)."""
    for i in range(tries):
        try:
            return f()
        except StaleElementReferenceException:
            if i == tries - 1:
                raise
            time.sleep(0.1)


def node(driver, ref):
    return driver.find_element(By.CSS_SELECTOR, f'#tree g[data-ref="{ref}"]')


def open_node(driver, ref, keyboard=False):
    def go():
        n = node(driver, ref)
        if keyboard:
            n.send_keys(Keys.ENTER)
        else:
            n.click()
    fresh(go)
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "node-title").text == ref)


def op_item(driver, text):
    def find():
        for li in driver.find_elements(By.CSS_SELECTOR, "#ops li"):
            if text in li.text:
                return li
        return None
    return fresh(find)


def op_text(driver, text):
    return fresh(lambda: (op_item(driver, text).text if op_item(driver, text) else ""))


def op_button(driver, text, label):
    def find():
        li = op_item(driver, text)
        return li.find_elements(By.XPATH, f".//button[text()='{label}']") if li else []
    return fresh(find)


def run(driver):
    wait = WebDriverWait(driver, 60)
    driver.get(BASE + "/console/")
    # A marker that a page reload would lose.
    driver.execute_script("window.__spinoffMarker = 'kept'")

    # Sign in; the tree: prod with two branches, one 2 deep; nothing of globex.
    driver.find_element(By.ID, "token").send_keys(TOKEN + Keys.ENTER)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#tree g[data-ref="native:dev2"]'))
    refs = [g.get_attribute("data-ref") for g in driver.find_elements(By.CSS_SELECTOR, "#tree g.node")]
    check("tree lists the tenant's resources", {"native:prod", "native:dev", "native:dev2", "native:qa"} <= set(refs), refs)
    levels = {g.get_attribute("data-ref"): g.get_attribute("aria-level") for g in driver.find_elements(By.CSS_SELECTOR, "#tree g.node")}
    check("dev and qa are branches of prod, dev2 is 2 deep", levels.get("native:dev") == "2" and levels.get("native:qa") == "2" and levels.get("native:dev2") == "3", levels)
    check("edges drawn", len(driver.find_elements(By.CSS_SELECTOR, "#tree path.edge")) >= 3)
    check("a node shows its record count", "6 records" in fresh(lambda: node(driver, "native:prod").get_attribute("aria-label")))
    check("another tenant's resource is not shown", "globex" not in driver.page_source)
    check("the token is not in local storage or a cookie",
          driver.execute_script("return window.localStorage.length") == 0 and driver.get_cookies() == [])
    shot(driver, "tree")

    # The script-bearing record shows as text, and runs nothing.
    open_node(driver, "native:prod", keyboard=True)
    wait.until(lambda d: XSS in d.find_element(By.ID, "records").text)
    check("the script-bearing record is shown as text", XSS in driver.find_element(By.ID, "records").text)
    check("no img element was made of it", driver.find_elements(By.CSS_SELECTOR, "#records img") == [])
    time.sleep(0.5)
    check("no script ran (no alert)", no_alert(driver))
    shot(driver, "record")

    # A physical copy of 100 000 records: its bar moves to done, no reload.
    open_node(driver, "native:big")
    driver.find_element(By.ID, "target-name").clear()
    driver.find_element(By.ID, "target-name").send_keys("bigcopy")
    driver.find_element(By.CSS_SELECTOR, '[data-action="copy"]').click()
    seen = set()
    deadline = time.time() + 240
    done = False
    def bar_of(text):
        li = op_item(driver, text)
        bars = li.find_elements(By.TAG_NAME, "progress") if li else []
        return (bars[0].get_attribute("value"), bars[0].get_attribute("max"), li.text) if bars else None
    while time.time() < deadline:
        b = fresh(lambda: bar_of("native:big → native:bigcopy "))
        if b is not None:
            if b[0] not in seen and 0 < int(b[0] or 0) < 100000 and "copy-running" not in checks:
                shot(driver, "copy-running")
                checks["copy-running"] = True
            seen.add(b[0])
            if "succeeded" in b[2]:
                done = True
                break
        time.sleep(0.2)
    b = fresh(lambda: bar_of("native:big → native:bigcopy "))
    check("the copy finished in the page", done, b)
    check("its bar reached the end", b is not None and b[0] == b[1] == "100000", b)
    check("the bar moved through values on the way", len(seen - {"100000"}) >= 2, sorted(seen))
    check("without a page reload", driver.execute_script("return window.__spinoffMarker") == "kept")
    shot(driver, "copy")

    # Cancel another copy (the page's own reads advance a copy too, so a
    # copy may finish before the click lands: then another one).
    canceled = None
    for attempt in range(3):
        name = f"bigcopy{attempt + 2}"
        text = f"native:big → native:{name} "
        driver.find_element(By.ID, "target-name").clear()
        driver.find_element(By.ID, "target-name").send_keys(name)
        driver.find_element(By.CSS_SELECTOR, '[data-action="copy"]').click()
        WebDriverWait(driver, 30, poll_frequency=0.05).until(
            lambda d: op_button(d, text, "Cancel") or "succeeded" in op_text(d, text))
        buttons = op_button(driver, text, "Cancel")
        if buttons:
            try:
                fresh(lambda: op_button(driver, text, "Cancel")[0].click())
            except IndexError:
                pass
        try:
            WebDriverWait(driver, 30).until(lambda d: "canceled" in op_text(d, text) or "succeeded" in op_text(d, text))
        except TimeoutException:
            pass
        if "canceled" in op_text(driver, text):
            canceled = text
            break
    check("a copy is canceled from its button", canceled is not None)
    check("a canceled copy offers retry", canceled is not None and bool(op_button(driver, canceled, "Retry")))

    # Diff and reset a branch.
    open_node(driver, "native:dev")
    driver.find_element(By.CSS_SELECTOR, '[data-action="diff"]').click()
    wait.until(lambda d: not d.find_element(By.ID, "diff-panel").get_attribute("hidden"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#diff tbody tr")
    check("the diff lists the branch's change", any("k2" in r.text and "changed" in r.text for r in rows), [r.text for r in rows])
    shot(driver, "diff")
    driver.find_element(By.CSS_SELECTOR, '[data-action="reset"]').click()
    check("reset asks first", not driver.find_element(By.ID, "confirm").get_attribute("hidden"))
    driver.find_element(By.ID, "confirm-yes").click()
    wait.until(lambda d: "was reset" in d.find_element(By.ID, "status").text)
    driver.find_element(By.CSS_SELECTOR, '[data-action="diff"]').click()
    wait.until(lambda d: d.find_element(By.ID, "diff-summary").text == "No differences.")
    check("after the reset the diff is empty", True)
    shot(driver, "reset")

    # Delete asks first; "No" keeps the resource.
    open_node(driver, "native:qa")
    driver.find_element(By.CSS_SELECTOR, '[data-action="delete"]').click()
    driver.find_element(By.ID, "confirm-no").click()
    check("declining a delete keeps the resource", bool(driver.find_elements(By.CSS_SELECTOR, '#tree g[data-ref="native:qa"]')))

    # Sign out: the tab forgets the token.
    driver.find_element(By.ID, "sign-out").click()
    check("sign-out forgets the token", driver.execute_script("return sessionStorage.getItem('spinoff-token')") is None)

    # The admin token: a tenant picker, then that tenant's tree only.
    if ADMIN:
        driver.find_element(By.ID, "token").send_keys(ADMIN + Keys.ENTER)
        wait.until(lambda d: not d.find_element(By.ID, "tenant-picker").get_attribute("hidden"))
        options = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#tenants option")]
        check("the admin sees a tenant picker", {"acme", "globex"} <= set(options), options)
        driver.find_element(By.ID, "tenant").send_keys("globex" + Keys.ENTER)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#tree g[data-ref="native:secret"]'))
        refs = [g.get_attribute("data-ref") for g in driver.find_elements(By.CSS_SELECTOR, "#tree g.node")]
        check("the picked tenant's resources only", refs == ["native:secret"], refs)
        shot(driver, "admin")
        # Narrow: still usable (the tree and panels stack).
        driver.set_window_size(420, 900)
        time.sleep(0.3)
        width = driver.execute_script("return document.documentElement.scrollWidth")
        check("no horizontal scroll at 420 px", width <= 430, width)
        shot(driver, "narrow")
        driver.set_window_size(1280, 1400)

        # Signing out revokes the token the picker minted.
        minted = driver.execute_script("return sessionStorage.getItem('spinoff-token')")
        driver.find_element(By.ID, "sign-out").click()
        WebDriverWait(driver, 10).until(lambda d: not d.find_element(By.ID, "sign-in").get_attribute("hidden"))
        status = driver.execute_script(
            "return fetch('/data/v1/tokens/current', {headers: {authorization: 'Bearer ' + arguments[0]}})"
            ".then(r => r.status)", minted)
        check("signing out revokes the minted token", status == 401, status)



def main():
    driver = browser()
    try:
        run(driver)
    except Exception as e:  # the report says what broke, the screenshot where
        failures.append(f"{type(e).__name__}: {e}")
        try:
            shot(driver, "failure")
        except Exception:
            pass
    finally:
        driver.quit()
    ok = not failures and all(checks.values())
    print(json.dumps({"ok": ok, "checks": checks, "failures": failures}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
