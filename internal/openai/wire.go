package openai

// Response types, in the fields and order OpenAI clients expect. Answers
// are content-addressed: the id derives from the request hash and created
// is 0, so the same request gives the same bytes from any provider (the
// time an answer was served is in its receipt, as a chain height).

// Usage counts tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// ChatChoice is one answer of a chat completion.
type ChatChoice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

// ChatCompletion is the body of a chat completion.
type ChatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   Usage        `json:"usage"`
}

// Delta is the increment a stream chunk carries.
type Delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

// ChunkChoice is one choice of a stream chunk.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	Text         *string `json:"text,omitempty"` // for /v1/completions streams
	FinishReason *string `json:"finish_reason"`
}

// Chunk is one server-sent event of a stream. The last chunk before
// [DONE] has no choices, the usage, and the Agora receipt.
type Chunk struct {
	ID           string        `json:"id"`
	Object       string        `json:"object"`
	Created      int64         `json:"created"`
	Model        string        `json:"model"`
	Choices      []ChunkChoice `json:"choices"`
	Usage        *Usage        `json:"usage,omitempty"`
	AgoraReceipt string        `json:"agora_receipt,omitempty"`
}

// TextChoice is one answer of a text completion.
type TextChoice struct {
	Index        int     `json:"index"`
	Text         string  `json:"text"`
	Logprobs     *string `json:"logprobs"`
	FinishReason string  `json:"finish_reason"`
}

// TextCompletion is the body of a text completion.
type TextCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []TextChoice `json:"choices"`
	Usage   Usage        `json:"usage"`
}

// InferResponse is the body of an /v1/infer answer.
type InferResponse struct {
	Model  string  `json:"model"`
	Class  int     `json:"class"`
	Logits []int32 `json:"logits"`
	// Proof is a Groth16 proof (base64) that the model maps the input to
	// these logits, when the request asked for one.
	Proof string `json:"proof,omitempty"`
}

// ModelCard is one entry of GET /v1/models.
type ModelCard struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Agora's additions.
	ModelID      string `json:"model_id"`
	Architecture string `json:"architecture,omitempty"`
	Task         string `json:"task,omitempty"`
	License      string `json:"license,omitempty"`
	Price        *Price `json:"price,omitempty"`
	Providers    int    `json:"providers,omitempty"` // on a gateway
}

// Price is what a model costs, in a denom's smallest unit.
type Price struct {
	Denom       string `json:"denom"`
	PerRequest  string `json:"per_request"`
	Per1KTokens string `json:"per_1k_tokens"`
}

// ModelList is the body of GET /v1/models.
type ModelList struct {
	Object string      `json:"object"`
	Data   []ModelCard `json:"data"`
}
