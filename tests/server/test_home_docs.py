"""``GET /`` says what the server is; ``/docs`` and ``/redoc`` load every asset from the server itself."""

from __future__ import annotations

import re

from tests.server.conftest import Api


async def test_home_as_json_links_the_docs(api: Api) -> None:
    response = await api.client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["name"] == "AgentAdapter"
    assert body["links"]["docs"] == "/docs" and body["links"]["redoc"] == "/redoc"
    assert body["links"]["openapi"] == "/openapi.json" and body["links"]["ready"] == "/readyz"


async def test_home_for_a_browser_is_a_page_of_links(api: Api) -> None:
    response = await api.client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    for path in ("/docs", "/redoc", "/openapi.json", "/readyz"):
        assert f'href="{path}"' in response.text
    assert "<script" not in response.text  # the API's strict CSP applies here: nothing to run


async def test_docs_pages_load_their_assets_from_the_server(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        html = (await api.client.get(page)).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources, html
        for source in sources:
            assert source.startswith("/"), f"{page} loads {source} from elsewhere"
            asset = await api.client.get(source)
            assert asset.status_code == 200, source
            assert asset.content, source
        assert "cdn" not in html.lower()
    js = await api.client.get("/docs/static/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"] and len(js.content) > 100_000
    assert (await api.client.get("/docs/static/../../etc/passwd")).status_code == 404


async def test_home_is_left_out_of_the_openapi_document(api: Api) -> None:
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths and "/docs/static" not in paths
