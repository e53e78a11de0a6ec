/**
 * Activation and deactivation as durable state machines.
 *
 * `activate` (one run per activation name): pull the image (joining a pull already running),
 * snapshot its top chain into the activation's device, activate it. `deactivate`: remove the
 * activation's device, then forget it. Both are idempotent: a second `activate` of the same
 * (image, name) finds the activation and returns it.
 *
 * @example
 * ```ts
 * import { activateMachine } from "./activate.ts";
 * // const run = await engine.start(activateMachine(effects), "web", { image: "golang", name: "web" });
 * // const { path } = await run.wait(); // "/dev/mapper/thinimage-act-web"
 * ```
 * @module
 */
import { machine } from "../engine/machine.ts";
import type { CataloguePort, DevicePort, RunPort } from "./effects.ts";
import { IMAGE_RETRY, ORCHESTRATION_RETRY, type pullMachine } from "./pull.ts";
import { activationDeviceName, MACHINE } from "../names.ts";
import { ThinimageError, UsageError } from "../errors.ts";

/** What `activate` is asked. */
export interface ActivateRequest {
  image: string;
  name: string;
  /**
   * When to list the bucket (`--pull`): `missing` uses an image already pulled here as it is,
   * `always` pulls first (what changed is fetched), `never` is offline. Runs recorded before
   * the field existed pulled first: absent means `always`.
   */
  pull?: "missing" | "always" | "never";
}

/** What `activate` returns (and `--json` prints). */
export interface ActivateResponse {
  image: string;
  name: string;
  manifestDigest: string;
  chainId: string;
  device: string;
  thinId?: number;
  path?: string;
  /** False when the activation existed already. */
  created: boolean;
}

/** What `deactivate` is asked. */
export interface DeactivateRequest {
  name: string;
}

/** What `deactivate` returns. */
export interface DeactivateResponse {
  name: string;
  device: string;
  removed: boolean;
}

/** The `activate` machine; `pull` must be the one registered with the engine that runs it. */
export function activateMachine(
  fx: CataloguePort & DevicePort & RunPort,
  pull: ReturnType<typeof pullMachine>,
) {
  return machine<ActivateRequest, ActivateResponse>(MACHINE.activate, { retry: IMAGE_RETRY })
    .start("pull", async ({ request, signal }) => {
      const existing = fx.catalog.getActivation(request.name);
      if (existing && existing.image !== request.image) {
        // The name on the command line is taken: a usage error (README's 2), nothing hostile.
        throw new UsageError(
          `activation name '${request.name}' is taken by image ${existing.image}: choose ` +
            `another --name, or free it with 'thinimage deactivate ${request.name}'`,
          { details: { name: request.name, image: existing.image, asked: request.image } },
        );
      }
      if (existing) {
        return {
          image: request.image,
          name: request.name,
          manifestDigest: existing.manifestDigest,
          chainId: existing.chainId,
          device: existing.device,
          created: false,
        };
      }
      if ((request.pull ?? "always") !== "always") {
        // Pulled here already: no listing, no pull run, no S3 client.
        const img = fx.catalog.getImage(request.image);
        const top = img?.state === "ready" && img.topChain
          ? fx.catalog.getChain(img.topChain)
          : undefined;
        // A pull of it still active (or left so by a process that died) is not settled yet:
        // joined below, so an interrupted pull is finished rather than left behind.
        if (img && top?.state === "sealed" && !fx.hasActiveRun(MACHINE.pull, request.image)) {
          return {
            image: request.image,
            name: request.name,
            manifestDigest: img.manifestDigest,
            chainId: top.chainId,
            device: activationDeviceName(request.name),
            created: true,
          };
        }
      }
      const pulled = await fx.child(pull, request.image, { image: request.image }, signal);
      return {
        image: request.image,
        name: request.name,
        manifestDigest: pulled.manifestDigest,
        chainId: pulled.topChain!,
        device: activationDeviceName(request.name),
        created: true,
      };
    }, ORCHESTRATION_RETRY)
    .to("snapshot", async ({ request, response }) => {
      const res = response!;
      if (res.created) {
        const top = fx.catalog.getChain(res.chainId);
        if (top?.state !== "sealed") {
          throw new ThinimageError(`image ${request.image}: its top chain is not sealed`);
        }
        // createSnapshot refuses (exit 75) when the pool is short of space: no check here too.
        await fx.createSnapshot(res.device, top.device);
        fx.catalog.addActivation({
          name: request.name,
          image: request.image,
          manifestDigest: res.manifestDigest,
          chainId: res.chainId,
          device: res.device,
        });
      }
      return res;
    })
    .to("activate", async ({ response }) => {
      const res = response!;
      const path = await fx.activateDevice(res.device);
      return { ...res, path, thinId: fx.thinIdOf(res.device) };
    })
    .end("active");
}

/** The `deactivate` machine. */
export function deactivateMachine(fx: CataloguePort & DevicePort) {
  return machine<DeactivateRequest, DeactivateResponse>(MACHINE.deactivate, {
    retry: IMAGE_RETRY,
  })
    .start("remove", async ({ request }) => {
      const a = fx.catalog.getActivation(request.name);
      const device = a?.device ?? activationDeviceName(request.name);
      const present = await fx.deviceExists(device);
      if (!a && !present) {
        throw new UsageError(`no activation named '${request.name}' here: see 'thinimage ls'`, {
          details: { name: request.name },
        });
      }
      if (present) await fx.removeDevice(device);
      return { name: request.name, device, removed: true };
    })
    .to("forget", ({ request, response }) => {
      fx.catalog.deleteActivation(request.name);
      return Promise.resolve(response!);
    })
    .end("gone");
}
