/* include/mcp/tools.h: the tools the daemon serves (MCP and the model): member balance
 * and voucher redemption through the Supabase RPC functions. */
#ifndef VA_MCP_TOOLS_H
#define VA_MCP_TOOLS_H

struct mcp_registry;
struct sb_rpc;
struct va_log;
struct tools_ctx;

/* The model-only tool that names the call's intent, and the sentence appended to the
 * model's instructions so that it calls it. */
#define TOOLS_INTENT "set_call_intent"
#define TOOLS_INTENT_CLAUSE                                                                        \
    "Once you understand what the caller wants, call set_call_intent once with the closest "     \
    "category, silently, and go on helping them."

/* Registers get_member_balance, redeem_voucher (model and MCP) and set_call_intent (model
 * only) into reg. rpc may be NULL (Supabase
 * not configured): the tools then answer with a failure result the model can say. The
 * returned context must outlive the registry's calls; free it after the loop ends. */
struct tools_ctx *mcp_tools_register(struct mcp_registry *reg, struct sb_rpc *rpc,
                                     struct va_log *log);
void mcp_tools_free(struct tools_ctx *tc);

#endif
