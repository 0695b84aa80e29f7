-- What a sent transaction's status promises, now that a transaction is
-- retired only when it certainly went nowhere (src/chain/sender). The
-- values are those of 0009; their meaning is sharper:
--
-- signed:    written, and no broadcast of it has had an outcome other than a
--            refusal: no mempool can hold it.
-- broadcast: it may be in a mempool: an endpoint took it, answered
--            something other than a refusal (an unknown error, a timeout), or
--            it is being broadcast again. Its nonce is never given back.
-- rejected:  refused while still `signed`; its nonce was given back (or is
--            held by another transaction of the send). Its receipt is still
--            looked for.
-- replaced:  superseded by a fee bump, by another transaction at the nonce,
--            or by the one that was mined. Its receipt is still looked for.
COMMENT ON COLUMN chain_send_txs.status IS
    'signed: no broadcast had an outcome other than a refusal; broadcast: may be in a mempool, '
    'its nonce is never given back; rejected: refused while signed; replaced: superseded. '
    'Receipts are looked up for every status.';
