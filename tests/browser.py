"""Headless Chromium driving the `serve` page, for its tests and its screenshot: started with the flags
this project's machines need, through selenium and Debian's chromedriver, drawing with pointer events.
"""
import base64
import contextlib
import shutil
import tempfile

from idx_fixtures import PAD

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_binary():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def unavailable():
    """Why Chromium cannot be driven here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if chromium_binary() is None:
        return "Chromium is not installed (apt-get install chromium chromium-driver)"
    if shutil.which("chromedriver") is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


@contextlib.contextmanager
def chromium(width=1100, height=640):
    """A selenium driver for a fresh headless Chromium with its own profile, removed afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_binary()
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
        options.add_argument(flag)
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, url):
    """Load the page and wait until it has asked the server about the model."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 20).until(lambda d: "trained on" in d.find_element("id", "model").text)


def draw(driver, points, kind="mouse"):
    """Draw one stroke through `points` (the pad's pixels) with a mouse, pen or touch pointer, and wait
    until the page has shown the model's reading of it."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    kinds = {"mouse": interaction.POINTER_MOUSE, "pen": interaction.POINTER_PEN, "touch": interaction.POINTER_TOUCH}
    pad = driver.find_element("id", "pad")
    scale = pad.rect["width"] / PAD
    actions = ActionBuilder(driver, mouse=PointerInput(kinds[kind], kind), duration=10)
    # Offsets are from the element's centre, in CSS pixels.
    at = [(round((x - PAD / 2) * scale), round((y - PAD / 2) * scale)) for x, y in points]
    actions.pointer_action.move_to(pad, *at[0]).pointer_down()
    for offset in at[1:]:
        actions.pointer_action.move_to(pad, *offset)
    actions.pointer_action.pointer_up()
    actions.perform()
    wait_until_read(driver)


def wait_until_read(driver):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(lambda d: d.find_element("tag name", "body").get_attribute("data-busy") == "false")


def reading(driver):
    """What the page shows: {"top": the big class name, "status": the status line, "bars": [(class,
    probability, the percentage shown)] in the order shown, "seen": the 28x28 image as 0-255 rows}."""
    return driver.execute_script("""
        const seen = document.getElementById("seen");
        const pixels = seen.getContext("2d").getImageData(0, 0, seen.width, seen.height).data;
        const rows = [];
        for (let r = 0; r < seen.height; r++)
          rows.push(Array.from({length: seen.width}, (_, c) => pixels[4 * (r * seen.width + c)]));
        return {top: document.getElementById("top-class").textContent,
                status: document.getElementById("status").textContent,
                bars: [...document.querySelectorAll("#bars li")].map(li =>
                  [li.dataset.class, Number(li.dataset.probability), li.querySelector(".percent").textContent]),
                seen: rows};
    """)


def canvas_png(driver):
    """The drawing canvas as the PNG bytes the page sends."""
    url = driver.execute_script("return document.getElementById('pad').toDataURL('image/png')")
    return base64.b64decode(url.partition(",")[2])


def screenshot(driver, width):
    """A PNG of the whole page at `width` CSS pixels: the viewport is sized to the page first."""
    metrics = {"width": width, "height": 400, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    metrics["height"] = driver.execute_script("return Math.ceil(document.body.getBoundingClientRect().bottom)")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    return driver.get_screenshot_as_png()


def save_small_png(png, path, colors=64):
    """A screenshot as a palette PNG: the page is flat colours, so 64 of them lose nothing visible."""
    import io

    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors, dither=Image.Dither.NONE).save(path, optimize=True)
