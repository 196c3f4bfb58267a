"""The LLM layer: the `llm_complete` activity, the provider registry and the providers.

Modules: `activity` (LLMActivities), `registry` (ProviderRegistry), `provider` (LLMProvider,
CallContext), `errors` (LLMCallError and classification), `pricing`, and one module per
provider (`scripted`, `openai_provider`, `anthropic_provider`). Nothing here is imported
eagerly, so importing this package pulls in no SDK.
"""
