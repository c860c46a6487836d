/** The `florence2` command. */
import { serve } from './serve';
import { models } from './models';
import { predict } from './predict';
import { annotate } from './annotate';
import { EXIT } from './exit-codes';
import { serverPackageVersion } from '../common/version';

const USAGE = `Usage: florence2 <command> [options]

Commands:
  serve     run the gRPC model server (florence2 serve --help)
  models    download, list, locate and remove cached models (florence2 models --help)
  predict   run a task on images through a server (florence2 predict --help)
  annotate  turn a folder of images into a YOLO / YOLO-seg / COCO dataset (florence2 annotate --help)

Options:
  -V, --version  print the version of florence2-server
  -h, --help     print this help
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest, process.env);
    case 'models':
      return models(rest, process.env);
    case 'predict':
      return predict(rest, process.env);
    case 'annotate':
      return annotate(rest, process.env);
    case '-V':
    case '--version':
      process.stdout.write(`${serverPackageVersion()}\n`);
      return EXIT.ok;
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? EXIT.usage : EXIT.ok;
    default:
      process.stderr.write(`florence2: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return EXIT.usage;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}
