"""A reference VLM gateway: an image and a question in, the model's answer and its cases out.

    POST /ask  (multipart: image, question, optional language, k)
      1. visrag /context?format=messages, through visrag_client: the similar verified cases as
         chat content parts (their images and labels, then the label votes);
      2. one chat-completions request to any OpenAI-compatible endpoint: a system instruction,
         then a user message with those parts, the question and the image to analyse;
      3. the answer, with the cases and label votes the model was given.

Configuration (environment): GATEWAY_VISRAG_URL, GATEWAY_VISRAG_API_KEY (optional),
GATEWAY_LLM_BASE_URL (e.g. http://host:8001/v1), GATEWAY_LLM_MODEL, GATEWAY_LLM_API_KEY
(optional), GATEWAY_LLM_TIMEOUT_S, GATEWAY_K, GATEWAY_MAX_IMAGES.
Run: ``uvicorn gateway:app --app-dir examples/gateway``.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from pydantic import BaseModel

from visrag_client import AsyncVisragClient, VisragAPIError, VisragConnectionError
from visrag_client.images import image_upload
from visrag_client.schemas import CaseOut, LabelVoteOut

SYSTEM = {
    "en": "You answer questions about the image to analyse. Reference cases with verified "
    "labels are given for comparison; use them as evidence, say when they disagree with what "
    "you see, and do not copy their labels without checking the image.",
    "es": "Respondes preguntas sobre la imagen a analizar. Se dan casos de referencia con "
    "etiquetas verificadas para comparar; úsalos como evidencia, di cuándo no coinciden con lo "
    "que ves y no copies sus etiquetas sin comprobar la imagen.",
}
QUERY_INTRO = {"en": "The image to analyse:", "es": "La imagen a analizar:"}
QUESTION = {"en": "Question: {q}", "es": "Pregunta: {q}"}


@dataclass(frozen=True)
class GatewaySettings:
    visrag_url: str
    llm_base_url: str
    llm_model: str
    visrag_api_key: str | None = None
    llm_api_key: str | None = None
    llm_timeout_s: float = 120.0
    k: int = 5
    max_images: int = 5

    @classmethod
    def from_env(cls) -> GatewaySettings:
        env = os.environ
        return cls(
            visrag_url=env.get("GATEWAY_VISRAG_URL", "http://127.0.0.1:8000"),
            llm_base_url=env.get("GATEWAY_LLM_BASE_URL", "http://127.0.0.1:8001/v1"),
            llm_model=env.get("GATEWAY_LLM_MODEL", "default"),
            visrag_api_key=env.get("GATEWAY_VISRAG_API_KEY") or None,
            llm_api_key=env.get("GATEWAY_LLM_API_KEY") or None,
            llm_timeout_s=float(env.get("GATEWAY_LLM_TIMEOUT_S", "120")),
            k=int(env.get("GATEWAY_K", "5")),
            max_images=int(env.get("GATEWAY_MAX_IMAGES", "5")),
        )


class AskResponse(BaseModel):
    answer: str
    model: str
    cases: list[CaseOut]
    label_votes: list[LabelVoteOut]


def chat_messages(
    parts: list[dict[str, Any]],
    question: str,
    image: bytes,
    content_type: str,
    language: Literal["en", "es"],
) -> list[dict[str, Any]]:
    """The chat-completions ``messages``: system, then one user message with every part."""
    query_url = f"data:{content_type};base64,{base64.b64encode(image).decode('ascii')}"
    return [
        {"role": "system", "content": SYSTEM[language]},
        {
            "role": "user",
            "content": [
                *parts,
                {"type": "text", "text": QUERY_INTRO[language]},
                {"type": "image_url", "image_url": {"url": query_url}},
                {"type": "text", "text": QUESTION[language].format(q=question)},
            ],
        },
    ]


def image_type(data: bytes, declared: str | None) -> str:
    """The query image's media type for its data URL: sniffed, else the declared one."""
    _, _, sniffed = image_upload(data)
    if sniffed.startswith("image/"):
        return sniffed
    return declared if declared and declared.startswith("image/") else "image/jpeg"


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    cfg = settings or GatewaySettings.from_env()
    app = FastAPI(title="visrag reference gateway")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/ask", response_model=AskResponse)
    async def ask(
        image: Annotated[UploadFile, File()],
        question: Annotated[str, Form(min_length=1, max_length=4000)],
        language: Annotated[Literal["en", "es"], Form()] = "en",
    ) -> AskResponse:
        data = await image.read()
        try:
            async with AsyncVisragClient(cfg.visrag_url, api_key=cfg.visrag_api_key) as visrag:
                ctx = await visrag.context(
                    data,
                    format="messages",
                    language=language,
                    k=cfg.k,
                    max_examples=cfg.k,
                    max_images=cfg.max_images,
                )
        except VisragAPIError as exc:
            status = exc.status_code if exc.status_code < 500 else 502
            raise HTTPException(status, f"visrag: {exc.error_type}: {exc.message}") from exc
        except VisragConnectionError as exc:
            raise HTTPException(502, f"visrag unreachable: {exc}") from exc
        body = {
            "model": cfg.llm_model,
            "messages": chat_messages(
                ctx.content_parts(), question, data, image.content_type or "image/jpeg", language
            ),
        }
        headers = {"Authorization": f"Bearer {cfg.llm_api_key}"} if cfg.llm_api_key else {}
        url = cfg.llm_base_url.rstrip("/") + "/chat/completions"
        try:
            async with httpx.AsyncClient(timeout=cfg.llm_timeout_s) as http:
                response = await http.post(url, json=body, headers=headers)
            response.raise_for_status()
            answer = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise HTTPException(502, f"chat-completions endpoint failed: {exc}") from exc
        return AskResponse(
            answer=str(answer), model=cfg.llm_model, cases=ctx.cases, label_votes=ctx.label_votes
        )

    return app


app = create_app()
