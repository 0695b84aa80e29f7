#!/usr/bin/env bash
# scripts/bench deposits, gas part: what a payer and the node pay on a real
# anvil with the real contracts (receipts' gasUsed, i.e. after refunds).
#
#   payer: ERC-20 transfer to a deposit address vs approve + PaymentRouter.pay
#          vs PaymentRouter.payWithPermit, and a native send to a deposit
#          address vs payNative;
#   node:  DepositFactory.sweep / sweepNative gas per deposit at batch sizes
#          1, 10 and 50 (and what each part costs, from the forge gas test).
#
# Needs `npm ci` (anvil, forge, cast). Options: --batches 1,10,50.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="$PWD/node_modules/.bin"
batches="1,10,50"
while [ $# -gt 0 ]; do
  case "$1" in
    --batches) batches="$2"; shift 2 ;;
    *) shift ;;
  esac
done

port=$((20000 + RANDOM % 20000))
rpc="http://127.0.0.1:$port"
"$bin/anvil" --port "$port" --silent >/dev/null 2>&1 &
anvil_pid=$!
trap 'kill "$anvil_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do "$bin/cast" chain-id --rpc-url "$rpc" >/dev/null 2>&1 && break; sleep 0.1; done

# anvil's public dev keys: 0 deploys and is the treasury, 1 pays.
k0=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
a0=0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266
k1=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
a1=0x70997970C51812dc3A010C7d01b50e0d17dc79C8
treasury=0x7e7E7E7e7e7e7E7E7e7E7e7e7E7E7e7E7e7e7E7e

deploy() { (cd contracts && "$bin/forge" create --offline --broadcast --rpc-url "$rpc" --private-key "$k0" "$@" 2>/dev/null) | awk '/Deployed to/ {print $3}'; }
send() { "$bin/cast" send --json --rpc-url "$rpc" "$@" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);if(r.status!=="0x1")throw new Error("reverted");console.log(parseInt(r.gasUsed,16))})'; }
salt() { "$bin/cast" keccak "bench-$1"; }

token=$(deploy src/DevStablecoin.sol:DevStablecoin)
router=$(deploy src/PaymentRouter.sol:PaymentRouter --constructor-args 172800 "$a0" "$treasury" 172800 "[$token]")
factory=$(deploy src/DepositFactory.sol:DepositFactory --constructor-args "$treasury")
send --private-key "$k0" "$token" "mint(address,uint256)" "$a1" 1000000000000 >/dev/null
# Steady state: the treasury already holds the token.
send --private-key "$k0" "$token" "mint(address,uint256)" "$treasury" 1 >/dev/null

echo "== payer gas (receipts; 25 USDC; the treasury already holds USDC) =="
deposit=$("$bin/cast" call --rpc-url "$rpc" "$factory" "predict(bytes32)(address)" "$(salt payer)")
t=$(send --private-key "$k1" "$token" "transfer(address,uint256)" "$deposit" 25000000)
printf '  %-44s %7s\n' "transfer to a deposit address (fresh)" "$t"
ap=$(send --private-key "$k1" "$token" "approve(address,uint256)" "$router" 25000000)
py=$(send --private-key "$k1" "$router" "pay(address,uint256,bytes32)" "$token" 25000000 "$(salt pay1)")
printf '  %-44s %7s (%s + %s)\n' "approve + pay" "$((ap + py))" "$ap" "$py"
nonce=$("$bin/cast" call --rpc-url "$rpc" "$token" "nonces(address)(uint256)" "$a1")
deadline=$(( $(date +%s) + 3600 ))
typed=$(cat <<JSON
{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],
 "Permit":[{"name":"owner","type":"address"},{"name":"spender","type":"address"},{"name":"value","type":"uint256"},{"name":"nonce","type":"uint256"},{"name":"deadline","type":"uint256"}]},
 "primaryType":"Permit","domain":{"name":"Dev USD Coin","version":"1","chainId":31337,"verifyingContract":"$token"},
 "message":{"owner":"$a1","spender":"$router","value":"25000000","nonce":"$nonce","deadline":"$deadline"}}
JSON
)
sig=$("$bin/cast" wallet sign --private-key "$k1" --data "$typed")
r=0x${sig:2:64}; s=0x${sig:66:64}; v=$((16#${sig:130:2}))
pp=$(send --private-key "$k1" "$router" "payWithPermit(address,uint256,bytes32,uint256,uint8,bytes32,bytes32)" "$token" 25000000 "$(salt pay2)" "$deadline" "$v" "$r" "$s")
printf '  %-44s %7s\n' "payWithPermit" "$pp"
ndeposit=$("$bin/cast" call --rpc-url "$rpc" "$factory" "predict(bytes32)(address)" "$(salt native-payer)")
nt=$(send --private-key "$k1" "$ndeposit" --value 10000000000000000)
np=$(send --private-key "$k1" "$router" "payNative(bytes32)" "$(salt pay3)" --value 10000000000000000)
printf '  %-44s %7s\n' "native send to a deposit address" "$nt"
printf '  %-44s %7s\n' "payNative" "$np"

echo "== sweep gas per deposit (receipts, after the 4,800 refund per cleared balance) =="
round=0
IFS=, read -r -a sizes <<<"$batches"
for n in "${sizes[@]}"; do
  round=$((round + 1))
  salts=(); nsalts=()
  for i in $(seq "$n"); do
    s1=$(salt "erc20-$round-$i"); salts+=("$s1")
    a=$("$bin/cast" call --rpc-url "$rpc" "$factory" "predict(bytes32)(address)" "$s1")
    send --private-key "$k0" "$token" "mint(address,uint256)" "$a" 25000000 >/dev/null
    s2=$(salt "native-$round-$i"); nsalts+=("$s2")
    b=$("$bin/cast" call --rpc-url "$rpc" "$factory" "predict(bytes32)(address)" "$s2")
    "$bin/cast" rpc --rpc-url "$rpc" anvil_setBalance "$b" 0x2386f26fc10000 >/dev/null
  done
  list=$(IFS=,; echo "[${salts[*]}]")
  nlist=$(IFS=,; echo "[${nsalts[*]}]")
  g=$(send --private-key "$k0" "$factory" "sweep(bytes32[],address)" "$list" "$token")
  h=$(send --private-key "$k0" "$factory" "sweepNative(bytes32[])" "$nlist")
  printf '  batch %-3s  sweep (ERC-20) %7s total, %6s per deposit;  sweepNative %7s total, %6s per deposit\n' \
    "$n" "$g" "$((g / n))" "$h" "$((h / n))"
done
